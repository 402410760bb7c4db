"""The examples run as a user runs them: the quickstart notebook and the demo summary script.

Both read the demo beamtime through ``catalogs/demo.yaml``. The tests lay out
a small copy of the repository in ``tmp_path`` (``catalogs/demo.yaml`` beside
a freshly written ``demo-data/`` with 32 x 32 frames) so they never depend on
``make demo`` having run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from intake_resonance.tools import demo

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "examples" / "quickstart.ipynb"
SUMMARY = REPO / "examples" / "demo_summary.py"
ENV_VAR = "INTAKE_RESONANCE_DEMO_CATALOG"


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``catalogs/demo.yaml`` + ``demo-data/`` + an empty ``examples/``, as in the repository."""
    root = tmp_path_factory.mktemp("repo")
    (root / "catalogs").mkdir()
    shutil.copy(REPO / "catalogs" / "demo.yaml", root / "catalogs" / "demo.yaml")
    demo.write_demo(root / "demo-data", frame_shape=(32, 32))
    (root / "examples").mkdir()
    (root / "elsewhere").mkdir()
    return root


def _execute(workdir: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    return nb


def _outputs(nb: nbformat.NotebookNode, kind: str) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == kind]


@pytest.mark.parametrize("where", ["examples", "root", "env"])
def test_quickstart_notebook_runs(repo_copy: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    if where == "env":  # from anywhere, with the catalog named by the environment
        monkeypatch.setenv(ENV_VAR, str(repo_copy / "catalogs" / "demo.yaml"))
        workdir = repo_copy / "elsewhere"
    else:
        monkeypatch.delenv(ENV_VAR, raising=False)
        workdir = repo_copy / "examples" if where == "examples" else repo_copy
    nb = _execute(workdir)
    assert not _outputs(nb, "error")
    figures = [o for o in _outputs(nb, "display_data") if "image/png" in o.data]
    assert len(figures) >= 4  # NEXAFS curve, frame, mean frames, intensity, stacked curves
    text = "\n".join(o.text for o in _outputs(nb, "stream"))
    assert "13 runs; ['baseline', 'primary']" in text
    assert "frames of (32, 32)" in text


def test_the_committed_notebook_holds_no_outputs() -> None:
    # Outputs go stale as the code moves and carry a machine's paths: the notebook is committed
    # without them, and the test above runs it as a user would.
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert not re.search(r"(/home/|/Users/|/work/|/tmp/|[A-Z]:\\\\)", NOTEBOOK.read_text())


def test_quickstart_notebook_names_what_it_shows() -> None:
    source = "\n".join(c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells)
    for needle in ('intake.open_catalog', "to_dataframe()", ".stack(", ".search(", 'engine="resonance"',
                   "open_datatree", "from intake_resonance import Catalog", ".compute()"):
        assert needle in source, needle


def test_demo_summary_script(repo_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "mean.png"
    proc = subprocess.run(
        [sys.executable, str(SUMMARY), str(repo_copy / "catalogs" / "demo.yaml"), "-o", str(out)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].endswith("sources demo_beamtime, demo_folder")
    assert sum(1 for line in lines if line.rstrip().endswith(("alice", "bob", "carol"))) == 13  # the runs table
    assert any(line.startswith("newest RSoXS run 251bf764 (en_scan, P3HT:PCBM, success): 14 events (12 primary), "
                               "12 frames of 32x32 int32")
               for line in lines)
    assert lines[-1] == "wrote mean.png"  # shown relative to the working directory
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5_000
