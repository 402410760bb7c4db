"""Damaged frames are errors, never numbers: through every face, check(pixels=True) and the CLI.

Each case damages one referenced frame (index 2, seq_num 3 of the RSoXS run)
of a copy of a beamtime our writer made; every face must raise a
BeamtimeDataError naming the store, run, seq_num and field, and nothing in
the beamtime may change.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from conftest import Written
from hostile import FACES, beamtime_digest, cli_refuses, image_array, raises, run_cli, small_beamtime

from intake_resonance.beamtime.errors import BeamtimeDataError, FrameDecodeError, FrameMismatchError, FramesMissingError
from intake_resonance.tools.check import check


@pytest.fixture
def bt(tmp_path: Path) -> Written:
    return small_beamtime(tmp_path)


def _chunk(bt: Written) -> Path:
    return image_array(bt) / "c" / "2" / "0" / "0"


def _truncate(bt: Written) -> None:
    _chunk(bt).write_bytes(_chunk(bt).read_bytes()[:-5])


def _garble(bt: Written) -> None:
    raw = bytearray(_chunk(bt).read_bytes())
    raw[12:20] = b"\xff" * 8
    _chunk(bt).write_bytes(bytes(raw))


def _wrong_size(bt: Written) -> None:
    from numcodecs.zstd import Zstd

    _chunk(bt).write_bytes(Zstd().encode(bt.frames["rsoxs"][2, :3].tobytes()))


def _folder(bt: Written) -> None:
    _chunk(bt).unlink()
    _chunk(bt).mkdir()


def _absent(bt: Written) -> None:
    _chunk(bt).unlink()


def _codec_fails(bt: Written) -> None:
    # The metadata names blosc; the chunks are zstd: the codec fails on every frame.
    meta_path = image_array(bt) / "zarr.json"
    meta = json.loads(meta_path.read_text())
    blosc = {"cname": "lz4", "clevel": 5, "shuffle": "shuffle", "typesize": 4, "blocksize": 0}
    meta["codecs"][-1] = {"name": "blosc", "configuration": blosc}
    meta_path.write_text(json.dumps(meta))


CASES: dict[str, tuple[Callable[[Written], None], type, str, int]] = {
    # damage, error class, words, seq_num of the first failing frame
    "truncated chunk": (_truncate, FrameDecodeError, "does not decode", 3),
    "garbled chunk": (_garble, FrameDecodeError, "does not decode", 3),
    "chunk of the wrong size": (_wrong_size, FrameDecodeError, "does not decode", 3),
    "chunk is a folder": (_folder, FrameDecodeError, "is a folder", 3),
    "chunk is absent": (_absent, FramesMissingError, "is absent", 3),
    "codec fails": (_codec_fails, FrameDecodeError, "does not decode", 1),
}


@pytest.fixture(params=list(CASES))
def damaged(request: pytest.FixtureRequest, bt: Written) -> tuple[Written, type, str, int]:
    damage, cls, words, seq_num = CASES[request.param]
    damage(bt)
    return bt, cls, words, seq_num


@pytest.mark.parametrize("face", FACES)
def test_damaged_frame_is_an_error_through_every_face(damaged: tuple[Written, type, str, int], face: str) -> None:
    bt, cls, words, seq_num = damaged
    uid = bt.uids["rsoxs"]
    before = beamtime_digest(bt.path)
    where = [bt.path.with_suffix(".zarr"), f"run {uid}", f"seq_num {seq_num}", "field detector_image", words]
    if face != "facade":  # the beamline's images() spans streams
        where.append("stream primary")
    raises(face, bt.path, uid, cls, *where)
    assert beamtime_digest(bt.path) == before


def test_check_pixels_reports_each_damaged_frame_and_cli(damaged: tuple[Written, type, str, int], tmp_path: Path) -> None:
    bt, cls, words, seq_num = damaged
    uid = bt.uids["rsoxs"]
    before = beamtime_digest(bt.path)
    if cls is not FramesMissingError:  # metadata alone does not show a damaged chunk
        assert [f for f in check(bt.path) if f.level == "error"] == []
    errors = [f for f in check(bt.path, pixels=True) if f.level == "error"]
    expected = [1, 2, 3, 4, 5] if seq_num == 1 else [3]  # a failing codec fails every frame
    assert [f.seq_num for f in errors] == expected
    assert all(words in f.message and f.run == uid and f.stream == "primary" and f.field == "detector_image" for f in errors)
    result = run_cli("check", "--pixels", bt.path)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert len([line for line in result.stdout.splitlines() if line.startswith("error:")]) == len(expected)
    (tmp_path / "out").mkdir()
    # Frames are read in parallel: with every frame failing, any of them may be named first.
    named = (words, f"run {uid}") + ((f"seq_num {seq_num}",) if len(expected) == 1 else ())
    cli_refuses("export", bt.path, uid, "-o", tmp_path / "out" / "x.nc", "-q", words=named)
    cli_refuses("plot", bt.path, uid, "-o", tmp_path / "out" / "x.png", words=named)
    assert beamtime_digest(bt.path) == before


def test_sound_beamtime_passes_check_pixels(bt: Written) -> None:
    assert check(bt.path, pixels=True) == []
    assert run_cli("check", "--pixels", bt.path).exit_code == 0


# ------------------------------------------------------- wrong types in image_refs
@pytest.mark.parametrize(
    ("value", "words"),
    [
        (b"runs/x/detector_image", "found a bytes"),  # a BLOB
        ("runs/\0/detector_image", "NUL"),
    ],
)
@pytest.mark.parametrize("face", FACES)
def test_wrong_typed_zarr_group(bt: Written, face: str, value: object, words: str) -> None:
    uid = bt.uids["rsoxs"]
    if isinstance(value, str):
        value = value.replace("x", uid)
    with closing(sqlite3.connect(bt.path)) as conn, conn:
        conn.execute("UPDATE image_refs SET zarr_group = ? WHERE index_in_stack = 1", (value,))
    conn.close()
    before = beamtime_digest(bt.path)
    raises(face, bt.path, uid, FrameMismatchError, "zarr_group", words, f"run {uid}", "seq_num 2", "field detector_image")
    findings = [f for f in check(bt.path, pixels=True) if f.level == "error"]
    assert [(f.run, f.seq_num) for f in findings] == [(uid, 2)] and words in findings[0].message
    result = run_cli("check", bt.path)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert beamtime_digest(bt.path) == before


def test_scalar_runs_read_beside_damaged_frames(bt: Written) -> None:
    shutil.rmtree(image_array(bt) / "c")
    for face in ("intake", "engine"):
        ds = FACES[face](bt.path, bt.uids["nexafs"])
        np.testing.assert_allclose(ds["i0"].values, [e["i0"] for e in bt.events["nexafs"]])
    with pytest.raises(BeamtimeDataError):
        FACES["engine"](bt.path, bt.uids["rsoxs"])
