"""The Zarr store is a boundary: no link or path in a beamtime makes the reader read outside it.

Each case links (or points) part of the store at a complete, readable copy
outside it, so a reader that followed the link would return good-looking
numbers. Every face must refuse with StoreEscapeError before reading a byte
there, and nothing in the beamtime may change.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from conftest import Written
from hostile import FACES, beamtime_digest, cli_refuses, image_array, nothing_opened_under, raises, run_cli, small_beamtime

from intake_resonance.beamtime.errors import StoreEscapeError
from intake_resonance.tools.check import check


@pytest.fixture
def bt(tmp_path: Path) -> Written:
    return small_beamtime(tmp_path)


def _link_chunk(bt: Written, outside: Path) -> None:
    chunk = image_array(bt) / "c" / "2" / "0" / "0"
    outside.mkdir()
    shutil.copy(chunk, outside / "0")  # the very same bytes: following the link would decode
    chunk.unlink()
    chunk.symlink_to(outside / "0")


def _link_metadata(bt: Written, outside: Path) -> None:
    meta = image_array(bt) / "zarr.json"
    outside.mkdir()
    shutil.copy(meta, outside / "zarr.json")
    meta.unlink()
    meta.symlink_to(outside / "zarr.json")


def _link_array(bt: Written, outside: Path) -> None:
    shutil.copytree(image_array(bt), outside)
    shutil.rmtree(image_array(bt))
    image_array(bt).symlink_to(outside, target_is_directory=True)


def _link_runs(bt: Written, outside: Path) -> None:
    runs = bt.path.with_suffix(".zarr") / "runs"
    shutil.copytree(runs, outside)
    shutil.rmtree(runs)
    runs.symlink_to(outside, target_is_directory=True)


def _absolute_group(bt: Written, outside: Path) -> None:
    shutil.copytree(image_array(bt), outside)
    with closing(sqlite3.connect(bt.path)) as conn, conn:
        conn.execute("UPDATE image_refs SET zarr_group = ?", (str(outside),))
    conn.close()


def _dotdot_group(bt: Written, outside: Path) -> None:
    shutil.copytree(image_array(bt), outside)
    with closing(sqlite3.connect(bt.path)) as conn, conn:
        conn.execute("UPDATE image_refs SET zarr_group = ?", (f"../{outside.name}",))
    conn.close()


CASES: dict[str, tuple[Callable[[Written, Path], None], int]] = {
    # damage, and the seq_num of the first frame the error names
    "chunk is a link out": (_link_chunk, 3),
    "array metadata is a link out": (_link_metadata, 1),
    "array folder is a link out": (_link_array, 1),
    "runs folder is a link out": (_link_runs, 1),
    "zarr_group is absolute": (_absolute_group, 1),
    "zarr_group climbs out": (_dotdot_group, 1),
}


@pytest.fixture(params=list(CASES))
def hostile(request: pytest.FixtureRequest, bt: Written, tmp_path: Path) -> tuple[Written, Path, int]:
    damage, seq_num = CASES[request.param]
    outside = tmp_path / "outside"
    damage(bt, outside)
    return bt, outside, seq_num


@pytest.mark.parametrize("face", FACES)
def test_faces_refuse_to_leave_the_store(hostile: tuple[Written, Path, int], face: str) -> None:
    bt, outside, seq_num = hostile
    uid = bt.uids["rsoxs"]
    before = beamtime_digest(bt.path, outside)
    with nothing_opened_under(outside) as opened:
        raises(
            face, bt.path, uid, StoreEscapeError,
            bt.path.with_suffix(".zarr"), "outside the Zarr store", f"run {uid}", f"seq_num {seq_num}", "field detector_image",
        )
        # runs without frames still read
        ds = FACES[face](bt.path, bt.uids["nexafs"])
    assert opened == []
    if face != "facade":
        assert ds["i0"].values.tolist() == [e["i0"] for e in bt.events["nexafs"]]
    assert beamtime_digest(bt.path, outside) == before


def test_cli_and_check_refuse_to_leave_the_store(hostile: tuple[Written, Path, int], tmp_path: Path) -> None:
    bt, outside, seq_num = hostile
    uid = bt.uids["rsoxs"]
    before = beamtime_digest(bt.path, outside)
    (tmp_path / "out").mkdir()
    with nothing_opened_under(outside) as opened:
        cli_refuses("export", bt.path, uid, "-o", tmp_path / "out" / "x.nc", "-q", words=("outside the Zarr store", uid))
        cli_refuses("plot", bt.path, uid, "-o", tmp_path / "out" / "x.png", words=("outside the Zarr store", uid))
        findings = check(bt.path, pixels=True)
        result = run_cli("check", "--pixels", bt.path)
    assert opened == []
    assert not (tmp_path / "out" / "x.nc").exists() and not (tmp_path / "out" / "x.png").exists()
    errors = [f for f in findings if f.level == "error"]
    assert errors and all("outside the Zarr store" in f.message and f.run == uid for f in errors)
    assert errors[0].seq_num == seq_num
    assert result.exit_code == 1 and "outside the Zarr store" in result.stdout and "Traceback" not in result.stderr
    assert beamtime_digest(bt.path, outside) == before


@pytest.mark.parametrize("face", FACES)
def test_store_that_is_itself_a_link_reads(bt: Written, tmp_path: Path, face: str) -> None:
    """Facilities mount data volumes by links: the store may be one, and links inside it may stay inside."""
    volume = tmp_path / "volume"
    volume.mkdir()
    store = bt.path.with_suffix(".zarr")
    shutil.move(store, volume / "beamtime.zarr")
    store.symlink_to(volume / "beamtime.zarr", target_is_directory=True)
    # a link inside the store that stays inside it: allowed
    array = volume / "beamtime.zarr" / "runs" / bt.uids["rsoxs"] / "detector_image"
    chunk = array / "c" / "1" / "0" / "0"
    shutil.move(chunk, array / "kept")
    chunk.symlink_to(Path("..") / ".." / ".." / "kept")
    assert chunk.read_bytes()
    got = FACES[face](bt.path, bt.uids["rsoxs"])
    frames = got if face == "facade" else got["detector_image"].values
    np.testing.assert_array_equal(frames, bt.frames["rsoxs"])
    assert [f for f in check(bt.path, pixels=True) if f.level == "error"] == []


def test_a_deeply_nested_zarr_json_and_a_string_array_are_one_clear_answer(tmp_path):
    import json

    from hostile import image_array, small_beamtime

    from intake_resonance import check, open_run_dataset
    from intake_resonance.beamtime.errors import BeamtimeError

    bt = small_beamtime(tmp_path)
    deep = "[" * 100_000 + "]" * 100_000
    (bt.path.with_suffix(".zarr") / "runs" / "zarr.json").write_text(
        '{"zarr_format": 3, "node_type": "group", "attributes": {"x": ' + deep + "}}"
    )
    assert check(bt.path) == []  # no RecursionError; the group is no frame array
    meta = image_array(bt) / "zarr.json"
    md = json.loads(meta.read_text())
    md["data_type"] = "string"
    meta.write_text(json.dumps(md))
    with pytest.raises(BeamtimeError) as info:
        open_run_dataset(bt.path, bt.uids["rsoxs"]).detector_image.values
    assert "metadata Zarr cannot read" in str(info.value) and "seq_num" in str(info.value)
    assert any("metadata Zarr cannot read" in f.message for f in check(bt.path, pixels=True))
