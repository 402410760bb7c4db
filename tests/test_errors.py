"""Every error: its type, its family, and the words of its message."""

from __future__ import annotations

import os
import pickle
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import T0, write_rsoxs

from intake_resonance.beamtime import errors, records
from intake_resonance.beamtime.errors import (
    BadJSONError,
    BeamtimeDataError,
    BeamtimeError,
    BeamtimeFormatError,
    BeamtimeNotFoundError,
    FrameIndexError,
    FrameMismatchError,
    FramesMissingError,
    RunNotFoundError,
    StoreEscapeError,
)
from intake_resonance.beamtime.format import Database
from intake_resonance.beamtime.frames import FrameStack
from intake_resonance.tools.writer import BeamtimeWriter


# --------------------------------------------------------------------- the family
def test_hierarchy() -> None:
    assert issubclass(BeamtimeNotFoundError, (BeamtimeError, FileNotFoundError))
    assert issubclass(BeamtimeFormatError, BeamtimeError)
    assert issubclass(RunNotFoundError, (BeamtimeError, KeyError))
    for cls in (BadJSONError, FramesMissingError, FrameIndexError, FrameMismatchError, StoreEscapeError):
        assert issubclass(cls, BeamtimeDataError) and issubclass(cls, BeamtimeError)
    assert issubclass(FrameIndexError, IndexError)
    assert issubclass(BadJSONError, ValueError)  # as json.JSONDecodeError, for the beamline's scripts
    assert set(errors.__all__) == {
        "BeamtimeError",
        "BeamtimeNotFoundError",
        "BeamtimeFormatError",
        "BeamtimeDataError",
        "BadJSONError",
        "BadTextError",
        "FramesMissingError",
        "FrameIndexError",
        "FrameMismatchError",
        "FrameDecodeError",
        "StoreEscapeError",
        "RunNotFoundError",
        "BeamtimeBusyError",
        "UnfinishedWriteError",
        "BeamtimeReplacedError",
        "LayoutError",
        "SearchCriterionError",
        "NotVirtualizableError",
        "VirtualTargetError",
    }
    assert issubclass(errors.NotVirtualizableError, BeamtimeError) and issubclass(errors.VirtualTargetError, BeamtimeError)
    assert issubclass(errors.SearchCriterionError, (BeamtimeError, ValueError))
    assert issubclass(errors.BeamtimeReplacedError, BeamtimeError)


def test_message_names_every_place() -> None:
    err = BadJSONError("event data is not valid JSON", "/d/bt.db", run="abc", stream="primary", seq_num=4, field="i0")
    assert str(err) == "/d/bt.db, run abc, stream primary, seq_num 4, field i0: event data is not valid JSON"
    assert (err.path, err.run, err.stream, err.seq_num, err.field) == ("/d/bt.db", "abc", "primary", 4, "i0")
    assert err.message == "event data is not valid JSON"
    assert str(BeamtimeError("plain")) == "plain"
    assert str(BeamtimeError("m", Path("/x.db"))) == "/x.db: m"
    # seq_num 0 is a place too
    assert "seq_num 0" in str(BeamtimeDataError("m", None, seq_num=0))


@pytest.mark.parametrize("cls", [getattr(errors, n) for n in errors.__all__])
def test_pickles_with_context(cls: type) -> None:
    err = cls("went wrong", "/d/bt.db", run="abc", stream="primary", seq_num=2, field="img")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls and str(back) == str(err)
    assert (back.run, back.seq_num, back.field, back.path) == ("abc", 2, "img", "/d/bt.db")


def test_str_of_builtin_mixins_is_the_message() -> None:
    assert str(BeamtimeNotFoundError("does not exist", "/x.db")) == "/x.db: does not exist"
    assert str(RunNotFoundError("no run", "/x.db", run="ab")) == "/x.db, run ab: no run"  # not quoted like KeyError
    assert str(FrameIndexError("too far", "/x.zarr")) == "/x.zarr: too far"


# ------------------------------------------------------------------ not a beamtime
def test_missing_path_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "bt.db"
    for exc_type in (BeamtimeNotFoundError, FileNotFoundError, BeamtimeError):
        with pytest.raises(exc_type):
            Database(path)
    with pytest.raises(BeamtimeNotFoundError) as info:
        Database(tmp_path / "bt.db")
    assert str(tmp_path / "bt.db") in str(info.value) and "does not exist" in str(info.value)
    assert os.listdir(tmp_path) == []


def test_directory_instead_of_file(tmp_path: Path) -> None:
    (tmp_path / "bt.db").mkdir()
    with pytest.raises(BeamtimeNotFoundError, match="directory") as info:
        Database(tmp_path / "bt.db")
    assert str(tmp_path / "bt.db") in str(info.value)


@pytest.mark.parametrize("content", [b"", b"hello, not sqlite", b"\x00" * 4096])
def test_not_sqlite(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bt.db"
    path.write_bytes(content)
    with pytest.raises(BeamtimeFormatError, match="not a SQLite database") as info:
        Database(path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == content


@pytest.mark.parametrize("missing", ["samples", "runs", "streams", "events", "image_refs"])
def test_sqlite_without_beamtime_tables(tmp_path: Path, missing: str) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        w.connection.execute("PRAGMA foreign_keys = OFF")
        w.connection.execute(f"DROP TABLE {missing}")
        w.connection.commit()
    with pytest.raises(BeamtimeFormatError) as info:
        Database(path)
    msg = str(info.value)
    assert str(path) in msg and f"table '{missing}' is missing" in msg


def test_empty_sqlite_names_first_missing_table(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(BeamtimeFormatError, match="table 'samples' is missing") as info:
        Database(path)
    assert str(path) in str(info.value)


def test_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        w.connection.execute("ALTER TABLE runs DROP COLUMN operator")
        w.connection.commit()
    with pytest.raises(BeamtimeFormatError) as info:
        Database(path)
    msg = str(info.value)
    assert str(path) in msg and "'runs'" in msg and "operator" in msg


def test_schema_version_too_new(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        w.connection.execute("PRAGMA user_version = 3")
        w.connection.commit()
    with pytest.raises(BeamtimeFormatError) as info:
        Database(path)
    msg = str(info.value)
    assert str(path) in msg and "3" in msg and "(2)" in msg and "newer" in msg


# -------------------------------------------------------------------- broken rows
@pytest.fixture
def one_stream(tmp_path: Path):
    """A run whose primary stream has three events; returns (path, uid, writer-open callback)."""
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        uid = w.open_run("scan", time=T0)
        w.open_stream("primary", {"a": {"dtype": "number"}}, time=T0)
        for i in range(3):
            w.write_event({"a": i}, time=T0 + i)
    return path, uid


def _set_data(path: Path, seq_num: int, text: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute("UPDATE events SET data = ? WHERE seq_num = ?", (text, seq_num))
    conn.commit()
    conn.close()


@pytest.mark.parametrize("text", ["{not json", '{"a": 1', "", "{'a': 1}"])
def test_bad_event_json_names_seq_num(one_stream, text: str) -> None:
    path, uid = one_stream
    _set_data(path, 2, text)
    with pytest.raises(BadJSONError) as info:
        records.stream_events(Database(path), uid, "primary")
    msg = str(info.value)
    assert str(path) in msg and f"run {uid}" in msg and "stream primary" in msg and "seq_num 2" in msg
    assert info.value.seq_num == 2


@pytest.mark.parametrize(("text", "found"), [("[1, 2]", "list"), ('"a"', "str"), ("3", "int"), ("null", "NoneType")])
def test_event_data_not_an_object(one_stream, text: str, found: str) -> None:
    path, uid = one_stream
    _set_data(path, 3, text)
    with pytest.raises(BadJSONError, match=f"must be a JSON object, found {found}") as info:
        records.stream_events(Database(path), uid, "primary")
    assert "seq_num 3" in str(info.value) and str(path) in str(info.value)


def test_two_objects_in_one_event_do_not_shift_columns(one_stream) -> None:
    # joined decoding must not let one row's text stand for two events
    path, uid = one_stream
    _set_data(path, 1, '{"a": 0}, {"a": 9}')
    _set_data(path, 2, "")
    with pytest.raises(BadJSONError, match="seq_num 1"):
        records.stream_events(Database(path), uid, "primary")


def test_bad_data_keys(one_stream) -> None:
    path, uid = one_stream
    conn = sqlite3.connect(path)
    conn.execute("UPDATE streams SET data_keys = '{\"a\": '")
    conn.commit()
    with pytest.raises(BadJSONError) as info:
        records.list_streams(Database(path), uid)
    msg = str(info.value)
    assert "data_keys" in msg and str(path) in msg and f"run {uid}" in msg and "stream primary" in msg
    conn.execute("UPDATE streams SET data_keys = '[1]'")
    conn.commit()
    conn.close()
    with pytest.raises(BadJSONError, match="data_keys must be a JSON object, found list"):
        records.list_streams(Database(path), uid)


def test_bad_run_metadata_and_sample_json(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        uid = w.open_run("scan", sample="PS", time=T0)
        w.close_run(time=T0 + 1)
        w.connection.execute("UPDATE runs SET metadata = '{oops'")
        w.connection.execute("UPDATE samples SET tags = '[\"a\"'")
        w.connection.commit()
    db = Database(path)
    run = records.get_run(db, uid)
    with pytest.raises(BadJSONError, match="run metadata") as info:
        run.metadata(db)
    assert f"run {uid}" in str(info.value)
    with pytest.raises(BadJSONError, match="sample tags") as info:
        records.get_sample(db, run.sample_id)
    assert f"samples.id={run.sample_id}" in str(info.value) and str(path) in str(info.value)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE samples SET tags = '\"abc\"', extra = NULL")
    conn.commit()
    with pytest.raises(BadJSONError, match="sample tags must be a JSON list, found str"):
        records.get_sample(db, run.sample_id)
    conn.execute("UPDATE samples SET tags = NULL, extra = '[1, 2]'")
    conn.commit()
    conn.close()
    with pytest.raises(BadJSONError, match="sample extra must be a JSON object, found list"):
        records.get_sample(db, run.sample_id)


# ------------------------------------------------------------------------- frames
@pytest.fixture
def rsoxs(tmp_path: Path):
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        uid, _, frames = write_rsoxs(w, T0, n=3)
    return path, uid, frames


def _stack(path: Path, uid: str) -> FrameStack:
    db = Database(path)
    refs = records.frame_refs(db, uid, "detector_image", "primary")
    return FrameStack(db.zarr_path, refs, db.path, run=uid, stream="primary", field="detector_image")


def _update(path: Path, sql: str, params: tuple = ()) -> None:
    conn = sqlite3.connect(path)
    conn.execute(sql, params)
    conn.commit()
    conn.close()


@pytest.mark.parametrize("group", ["../x", "/abs", "runs/../../x"])
def test_zarr_group_escaping_store(rsoxs, group: str) -> None:
    path, uid, _ = rsoxs
    _update(path, "UPDATE image_refs SET zarr_group = ? WHERE index_in_stack = 1", (group,))
    stack = _stack(path, uid)
    np.testing.assert_array_equal(stack[0], rsoxs[2][0])
    with pytest.raises(StoreEscapeError) as info:
        stack[1]
    msg = str(info.value)
    assert repr(group) in msg and str(path.with_suffix(".zarr")) in msg
    assert f"run {uid}" in msg and "seq_num 2" in msg and "field detector_image" in msg


def test_symlink_out_of_store_refused_although_readable(rsoxs, tmp_path: Path) -> None:
    path, uid, frames = rsoxs
    store = path.with_suffix(".zarr")
    # a complete, readable copy of the array outside the store, reached through a link
    outside = tmp_path / "elsewhere"
    os.rename(store / "runs" / uid, outside)
    os.symlink(outside, store / "runs" / uid)
    assert zarr.open_array(str(store), path=f"runs/{uid}/detector_image", mode="r").shape == (3, 6, 5)
    with pytest.raises(StoreEscapeError, match="outside the Zarr store") as info:
        _stack(path, uid)[0]
    assert f"run {uid}" in str(info.value) and "seq_num 1" in str(info.value)


def test_index_in_stack_beyond_array(rsoxs) -> None:
    path, uid, frames = rsoxs
    _update(path, "UPDATE image_refs SET index_in_stack = 7 WHERE index_in_stack = 2")
    stack = _stack(path, uid)
    np.testing.assert_array_equal(stack[:2], frames[:2])
    for key in (2, slice(None), [0, 2]):
        with pytest.raises(FrameIndexError) as info:
            stack[key]
        msg = str(info.value)
        assert "index_in_stack 7" in msg and "3 frames" in msg and "seq_num 3" in msg
        assert f"run {uid}" in msg and "field detector_image" in msg
    _update(path, "UPDATE image_refs SET index_in_stack = -1 WHERE index_in_stack = 7")
    with pytest.raises(FrameIndexError, match="index_in_stack -1"):
        _stack(path, uid)[2]


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("UPDATE image_refs SET shape_x = 7", ["(7, 5)", "(3, 6, 5)"]),
        ("UPDATE image_refs SET shape_y = 4", ["(6, 4)"]),
        ("UPDATE image_refs SET dtype = 'uint16'", ["int32", "uint16"]),
    ],
)
def test_frame_shape_or_dtype_disagrees(rsoxs, sql: str, words: list[str]) -> None:
    path, uid, _ = rsoxs
    _update(path, sql)
    with pytest.raises(FrameMismatchError) as info:
        _stack(path, uid)[0]
    msg = str(info.value)
    assert all(w in msg for w in words), msg
    assert f"run {uid}" in msg and "field detector_image" in msg


def test_image_refs_disagree_among_themselves(rsoxs) -> None:
    path, uid, _ = rsoxs
    _update(path, "UPDATE image_refs SET dtype = 'uint8' WHERE index_in_stack = 0")
    with pytest.raises(FrameMismatchError, match="disagree") as info:
        records.frame_refs(Database(path), uid, "detector_image", "primary")
    assert f"run {uid}" in str(info.value) and str(path) in str(info.value)
    _update(path, "UPDATE image_refs SET dtype = 'notadtype'")
    with pytest.raises(FrameMismatchError, match="'notadtype' is not a NumPy dtype"):
        records.frame_refs(Database(path), uid, "detector_image", "primary")


def test_two_frames_for_one_event(rsoxs) -> None:
    path, uid, _ = rsoxs
    _update(
        path,
        "INSERT INTO image_refs (event_uid, field_name, zarr_group, index_in_stack, shape_x, shape_y, dtype) "
        "SELECT event_uid, field_name, zarr_group, 0, shape_x, shape_y, dtype FROM image_refs WHERE index_in_stack = 1",
    )
    with pytest.raises(FrameMismatchError, match="more than one frame") as info:
        records.frame_refs(Database(path), uid, "detector_image", "primary")
    assert "seq_num 2" in str(info.value)


def test_missing_store(rsoxs) -> None:
    path, uid, _ = rsoxs
    store = path.with_suffix(".zarr")
    os.rename(store, path.parent / "moved.zarr")
    with pytest.raises(FramesMissingError) as info:
        _stack(path, uid)[0]
    msg = str(info.value)
    assert str(store) in msg and "does not exist" in msg and f"run {uid}" in msg and "seq_num 1" in msg
    assert not store.exists()


def test_missing_array(rsoxs) -> None:
    path, uid, _ = rsoxs
    store = path.with_suffix(".zarr")
    os.rename(store / "runs" / uid, path.parent / "moved")
    with pytest.raises(FramesMissingError) as info:
        _stack(path, uid)[1]
    msg = str(info.value)
    assert str(store) in msg and f"runs/{uid}/detector_image" in msg and "seq_num 2" in msg
    assert f"run {uid}" in msg and "field detector_image" in msg
