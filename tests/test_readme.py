"""The README's python blocks run as written, in order, in one interpreter, against the demo beamtime.

The tests lay out what ``make demo`` leaves in a checkout (``catalogs/`` and
``demo-data/`` with the demo beamtime, 32 x 32 frames) in ``tmp_path`` and
run every python block there. A block that talks to a server says so (it
reads its key from ``TILED_SINGLE_USER_API_KEY``); the test starts
``intake-resonance serve`` for it on a free port and points the block's
``http://127.0.0.1:8000`` there.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from served import running_server

from intake_resonance.tools import demo

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SERVER_URL = "http://127.0.0.1:8000"

_RUNNER = """
import json, sys, traceback
blocks = json.load(open(sys.argv[1]))
namespace = {"__name__": "__main__"}
for line, code in blocks:
    try:
        exec(compile(code, f"README.md:{line}", "exec"), namespace)
    except BaseException:
        traceback.print_exc()
        sys.exit(f"README python block at line {line} failed")
    print(f"ran README.md:{line}", flush=True)
"""


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(first line number, code)`` of every fenced python block, in order."""
    blocks = []
    for match in re.finditer(r"^```python\n(.*?)^```", text, flags=re.M | re.S):
        blocks.append((text.count("\n", 0, match.start()) + 2, match.group(1)))
    return blocks


def test_the_readme_has_python_blocks_and_the_parser_finds_them() -> None:
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 10
    line, code = blocks[0]
    assert README.read_text().splitlines()[line - 2] == "```python" and code.startswith("import intake")


@pytest.mark.filterwarnings("ignore")
def test_readme_python_blocks_run_in_order(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    shutil.copytree(REPO / "catalogs", root / "catalogs")
    db = demo.write_demo(root / "demo-data", frame_shape=(32, 32))
    blocks = python_blocks(README.read_text())
    key = secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RESONANCE_DATA")}
    env["TILED_SINGLE_USER_API_KEY"] = key
    env["MPLBACKEND"] = "Agg"
    log: list[str] = []
    with running_server(db, log, env=env) as (url, _proc):
        ready = [(line, code.replace(SERVER_URL, url)) for line, code in blocks]
        (tmp_path / "blocks.json").write_text(json.dumps(ready))
        done = subprocess.run(
            [sys.executable, "-c", _RUNNER, str(tmp_path / "blocks.json")],
            cwd=root, env=env, capture_output=True, text=True, timeout=600,
        )
    assert done.returncode == 0, done.stderr[-4000:] + "\n".join(log)[-2000:]
    ran = [line for line in done.stdout.splitlines() if line.startswith("ran README.md:")]  # libraries print too
    assert ran == [f"ran README.md:{line}" for line, _ in blocks]
    # what the blocks wrote stayed in the checkout
    assert (root / "mine.yaml").is_file() and (root / "demo-data" / "demo.icechunk").is_dir()
