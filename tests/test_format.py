"""format.py: read-only opening, the schema check, store containment, open_zarr_array."""

from __future__ import annotations

import os
import pickle
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import T0, write_nexafs, write_rsoxs

from intake_resonance.beamtime import records
from intake_resonance.beamtime.errors import (
    BeamtimeFormatError,
    FramesMissingError,
    StoreEscapeError,
)
from intake_resonance.beamtime.format import (
    REQUIRED_COLUMNS,
    SCHEMA_VERSION,
    Database,
    array_path,
    open_zarr_array,
    zarr_path_for,
)
from intake_resonance.beamtime.frames import FrameStack
from intake_resonance.tools.writer import BeamtimeWriter


def test_zarr_path_for() -> None:
    assert zarr_path_for("/a/b/bt.db") == Path("/a/b/bt.zarr")
    assert zarr_path_for(Path("x y#1.db")) == Path("x y#1.zarr")


def test_required_columns_cover_schema_1() -> None:
    assert SCHEMA_VERSION == 2
    assert set(REQUIRED_COLUMNS) == {"samples", "runs", "streams", "events", "image_refs"}
    assert "compression_codec" not in REQUIRED_COLUMNS["image_refs"]


@pytest.mark.parametrize("name", ["bt #1.db", "b?t.db", "100% done.db", "a b#c?d%e.db"])
@pytest.mark.parametrize("folder", ["plain", "my folder #2", "what?", "50%", "x #?% y"])
def test_special_characters_in_file_and_folder_names(tmp_path: Path, folder: str, name: str) -> None:
    path = tmp_path / folder / name
    with BeamtimeWriter(path, seed=0) as w:
        uid, _, frames = write_rsoxs(w, T0, n=2)
    before = sorted(os.listdir(path.parent))
    db = Database(path)
    assert db.zarr_path == path.with_suffix(".zarr")
    assert [r.uid for r in records.list_runs(db)] == [uid]
    stack = FrameStack(db.zarr_path, records.frame_refs(db, uid, "detector_image", "primary"))
    np.testing.assert_array_equal(stack[:], frames)
    db.close()
    assert sorted(os.listdir(path.parent)) == before
    # the percent-quoted names must not reach a sibling file
    assert not (tmp_path / folder / "b").exists()


def test_lazy_connection_reopens_and_pickles(beamtime) -> None:
    db = Database(beamtime.path)
    assert "schema_version=2" in repr(db)
    first = db.query("SELECT uid FROM runs ORDER BY time_start")
    db.close()
    assert db._conn is None
    assert db.query("SELECT uid FROM runs ORDER BY time_start") == first
    clone = pickle.loads(pickle.dumps(db))
    assert clone._conn is None and clone.path == db.path and clone.schema_version == 2
    assert clone.query("SELECT uid FROM runs ORDER BY time_start") == first
    db.close()
    clone.close()


def test_query_uses_parameters(beamtime) -> None:
    db = Database(beamtime.path)
    uid = beamtime.uids["nexafs"]
    assert db.query("SELECT plan_name FROM runs WHERE uid = ?", (uid,)) == [("nexafs",)]
    assert db.query("SELECT plan_name FROM runs WHERE uid = ?", ["' OR 1=1 --"]) == []


def test_readonly_connection_refuses_writes(beamtime) -> None:
    db = Database(beamtime.path)
    with pytest.raises(BeamtimeFormatError, match="readonly|read-only|query_only"):
        db.query("PRAGMA user_version=5")
    assert db.query("PRAGMA user_version") == [(2,)]
    with pytest.raises(BeamtimeFormatError, match=str(beamtime.path)):
        db.query("DELETE FROM runs")
    assert len(db.query("SELECT uid FROM runs")) == 2


def test_schema_version_0_read_as_1(tmp_path: Path) -> None:
    path = tmp_path / "v0.db"
    with BeamtimeWriter(path, schema_version=0) as w:
        write_nexafs(w, T0)
    assert Database(path).schema_version == 1


def test_extra_tables_and_columns_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        w.connection.execute("ALTER TABLE runs ADD COLUMN comment TEXT")
        w.connection.execute("CREATE TABLE notes (x TEXT)")
        write_nexafs(w, T0)
    assert len(records.list_runs(Database(path))) == 1


# ------------------------------------------------------------------- containment
@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "bt.zarr"
    (root / "runs" / "abc" / "img").mkdir(parents=True)
    return root


def test_array_path_inside(store: Path) -> None:
    assert array_path(store, "runs/abc/img") == store / "runs" / "abc" / "img"
    # a path that does not exist yet is still inside
    assert array_path(store, "runs/zzz/img") == store / "runs" / "zzz" / "img"


@pytest.mark.parametrize(
    "group", ["../x", "/abs", "runs/../../x", "runs/./abc", "runs//abc", "", ".", "runs\\..\\x", "runs/abc/.."]
)
def test_array_path_refuses_escapes(store: Path, group: str) -> None:
    with pytest.raises(StoreEscapeError) as info:
        array_path(store, group, run="abc", field="img", seq_num=3)
    msg = str(info.value)
    assert str(store) in msg and repr(group) in msg
    assert "run abc" in msg and "seq_num 3" in msg and "field img" in msg
    assert info.value.run == "abc" and info.value.seq_num == 3


def test_array_path_refuses_symlink_out_of_store(store: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("readable")
    os.symlink(outside, store / "runs" / "link")
    with pytest.raises(StoreEscapeError, match="outside the Zarr store"):
        array_path(store, "runs/link")
    with pytest.raises(StoreEscapeError):
        array_path(store, "runs/link/secret")


def test_symlinked_store_itself_is_followed(tmp_path: Path) -> None:
    # The .zarr may itself be a link (e.g. to another disk): that is where the frames are.
    with BeamtimeWriter(tmp_path / "real" / "bt.db") as w:
        uid, _, frames = write_rsoxs(w, T0, n=2)
    (tmp_path / "view").mkdir()
    os.symlink(tmp_path / "real" / "bt.zarr", tmp_path / "view" / "bt.zarr")
    arr = open_zarr_array(tmp_path / "view" / "bt.zarr", f"runs/{uid}/detector_image")
    np.testing.assert_array_equal(arr[:], frames)


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_open_zarr_array_reads_both_formats(tmp_path: Path, zarr_format: int) -> None:
    with BeamtimeWriter(tmp_path / "bt.db", zarr_format=zarr_format) as w:
        uid, _, frames = write_rsoxs(w, T0, n=3)
    arr = open_zarr_array(tmp_path / "bt.zarr", f"runs/{uid}/detector_image")
    assert arr.read_only
    np.testing.assert_array_equal(arr[:], frames)
    with pytest.raises(Exception):
        arr[0] = frames[0]
    np.testing.assert_array_equal(open_zarr_array(tmp_path / "bt.zarr", f"runs/{uid}/detector_image")[0], frames[0])


def test_open_zarr_array_missing(tmp_path: Path) -> None:
    with BeamtimeWriter(tmp_path / "bt.db") as w:
        uid, _, _ = write_rsoxs(w, T0, n=1)
    store = tmp_path / "bt.zarr"
    with pytest.raises(FramesMissingError, match="missing") as info:
        open_zarr_array(store, f"runs/{uid}/nope", run=uid, field="nope")
    assert str(store) in str(info.value) and f"run {uid}" in str(info.value)
    # a group is not an array
    with pytest.raises(FramesMissingError, match=f"runs/{uid}"):
        open_zarr_array(store, f"runs/{uid}")
    with pytest.raises(FramesMissingError, match="does not exist") as info:
        open_zarr_array(tmp_path / "gone.zarr", f"runs/{uid}/detector_image")
    assert str(tmp_path / "gone.zarr") in str(info.value)
    assert not (tmp_path / "gone.zarr").exists()


def test_sqlite_file_without_header_check_bypass(tmp_path: Path) -> None:
    # a file that starts like SQLite but is truncated garbage
    path = tmp_path / "bad.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    with pytest.raises(BeamtimeFormatError) as info:
        Database(path)
    assert str(path) in str(info.value)


def test_plain_sqlite_connection_still_sees_writes_after_reader(beamtime) -> None:
    # Our reader holds no lock between queries: a writer can commit meanwhile.
    db = Database(beamtime.path)
    db.query("SELECT * FROM runs")
    conn = sqlite3.connect(beamtime.path, timeout=0.1)
    conn.execute("UPDATE runs SET operator = 'zed'")
    conn.commit()
    conn.close()
    assert {r[0] for r in db.query("SELECT operator FROM runs")} == {"zed"}
