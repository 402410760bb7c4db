"""The wheel a user installs carries the type hints marker and every layer."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_ships_py_typed_and_the_layers(tmp_path: Path) -> None:
    src = tmp_path / "src-copy"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("intake_resonance-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "intake_resonance/py.typed" in names
    for layer in ("beamtime", "datasets", "analysis", "faces", "tools"):
        assert f"intake_resonance/{layer}/__init__.py" in names
    assert "intake_resonance/faces/tiled/streams.py" in names
