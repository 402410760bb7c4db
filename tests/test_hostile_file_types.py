"""Named pipes and devices where files belong: refused at once, through every face, never waited on.

Opening a named pipe for reading waits for a writer, and a character device
such as ``/dev/zero`` never ends. Every case is read through every face
(beamline facade, intake, the xarray engine) and ``check --pixels`` in one
child process with a deadline: a hang fails the tests instead of the suite.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hostile import image_array, small_beamtime

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")

TESTS = Path(__file__).resolve().parent
_READ = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from hostile import FACES
from intake_resonance import check
from intake_resonance.beamtime.errors import BeamtimeError
results = {}
for name, (path, uid) in json.load(open(sys.argv[1])).items():
    out = results[name] = {}
    for face, read in FACES.items():
        try:
            read(Path(path), uid)
            out[face] = "read"
        except BeamtimeError as exc:
            out[face] = f"{type(exc).__name__}: {exc}"
    try:
        out["check"] = " | ".join(str(f) for f in check(path, pixels=True))
    except BeamtimeError as exc:
        out["check"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(results))
"""
_COMPANIONS = ("-journal", "-wal", "-shm")


def _replace_by_pipe(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _device(path: Path) -> bool:
    path.unlink()
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # what /dev/zero is: bytes without end
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """Every case laid out, then read through every face in one child process with a deadline."""
    cases: dict[str, tuple[str, str]] = {}

    def case(name: str) -> tuple[Path, Path]:
        bt = small_beamtime(tmp_path_factory.mktemp(name.replace(" ", "_")))
        cases[name] = (str(bt.path), bt.uids["rsoxs"])
        return bt.path, image_array(bt)

    _replace_by_pipe(case("chunk")[1] / "c" / "2" / "0" / "0")
    _replace_by_pipe(case("array zarr.json")[1] / "zarr.json")
    for companion in _COMPANIONS:
        db = case(companion)[0]
        os.mkfifo(db.with_name(db.name + companion))
    _replace_by_pipe(case("database")[0])
    device = case("device")[1] / "c" / "2" / "0" / "0"
    if not _device(device):
        del cases["device"]
    spec = tmp_path_factory.mktemp("spec") / "cases.json"
    spec.write_text(json.dumps(cases))
    done = subprocess.run(
        [sys.executable, "-c", _READ, str(spec), str(TESTS)], capture_output=True, text=True, timeout=180
    )  # a face that waits on a pipe: TimeoutExpired, and every test here fails
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, dict[str, str]] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.mark.parametrize("where", ["chunk", "array zarr.json"])
def test_a_pipe_in_the_store_is_refused(faces: dict[str, dict[str, str]], where: str) -> None:
    out = faces[where]
    for face in ("facade", "intake", "engine", "check"):
        assert "not a regular file" in out[face], (face, out[face])
    for face in ("facade", "intake", "engine"):
        assert out[face].split(":")[0] in ("FrameDecodeError", "FrameMismatchError", "BeamtimeFormatError"), out[face]


@pytest.mark.parametrize("companion", _COMPANIONS)
def test_a_pipe_beside_the_database_is_refused(faces: dict[str, dict[str, str]], companion: str) -> None:
    for face, text in faces[companion].items():  # check reports it as a finding
        assert face == "check" or text.startswith("BeamtimeFormatError"), (face, text)
        assert f"beamtime.db{companion}" in text and "not a regular file" in text, (face, text)


def test_a_pipe_as_the_database_is_refused(faces: dict[str, dict[str, str]]) -> None:
    for face, text in faces["database"].items():
        assert "not a regular file" in text, (face, text)


def test_a_character_device_as_a_chunk_is_refused(faces: dict[str, dict[str, str]]) -> None:
    if "device" not in faces:
        pytest.skip("cannot make a device node here (needs privileges)")
    for face in ("facade", "intake", "engine"):
        assert "not a regular file" in faces["device"][face], (face, faces["device"][face])
