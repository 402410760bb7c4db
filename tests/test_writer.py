"""BeamtimeWriter follows FORMAT.md: schema, commit timing, Zarr layout, samples."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import orjson
import pytest
import zarr
from conftest import IMAGE_KEYS, NEXAFS_KEYS, T0, write_nexafs, write_rsoxs

from intake_resonance.beamtime import records
from intake_resonance.beamtime.format import Database
from intake_resonance.beamtime.frames import FrameStack
from intake_resonance.tools.writer import BeamtimeWriter

# FORMAT.md, table by table: (name, declared type, notnull, pk)
SPEC_COLUMNS = {
    "samples": [
        ("id", "INTEGER", 0, 1),
        ("name", "TEXT", 1, 0),
        ("formula", "TEXT", 0, 0),
        ("serial", "TEXT", 0, 0),
        ("tags", "TEXT", 0, 0),
        ("beamline_pos", "TEXT", 0, 0),
        ("extra", "TEXT", 0, 0),
    ],
    "runs": [
        ("uid", "TEXT", 0, 1),
        ("sample_id", "INTEGER", 0, 0),
        ("plan_name", "TEXT", 1, 0),
        ("time_start", "REAL", 1, 0),
        ("time_stop", "REAL", 0, 0),
        ("exit_status", "TEXT", 0, 0),
        ("num_events", "INTEGER", 0, 0),
        ("operator", "TEXT", 0, 0),
        ("metadata", "TEXT", 0, 0),
    ],
    "streams": [
        ("uid", "TEXT", 0, 1),
        ("run_uid", "TEXT", 1, 0),
        ("name", "TEXT", 1, 0),
        ("data_keys", "TEXT", 1, 0),
        ("time_created", "REAL", 1, 0),
    ],
    "events": [
        ("uid", "TEXT", 0, 1),
        ("stream_uid", "TEXT", 1, 0),
        ("seq_num", "INTEGER", 1, 0),
        ("time", "REAL", 1, 0),
        ("data", "TEXT", 1, 0),
        ("timestamps", "TEXT", 0, 0),
    ],
    "image_refs": [
        ("id", "INTEGER", 0, 1),
        ("event_uid", "TEXT", 1, 0),
        ("field_name", "TEXT", 1, 0),
        ("zarr_group", "TEXT", 1, 0),
        ("index_in_stack", "INTEGER", 1, 0),
        ("shape_x", "INTEGER", 1, 0),
        ("shape_y", "INTEGER", 1, 0),
        ("dtype", "TEXT", 1, 0),
    ],
}


def _ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)


def _columns(conn: sqlite3.Connection, table: str) -> list[tuple]:
    return [(r[1], r[2], r[3], r[5]) for r in conn.execute(f"PRAGMA table_info({table})")]


@pytest.mark.parametrize("version", [0, 1, 2])
def test_schema_tables_columns_and_version(tmp_path: Path, version: int) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path, schema_version=version):
        pass
    conn = _ro(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == version
    for table, spec in SPEC_COLUMNS.items():
        expected = spec + ([("compression_codec", "TEXT", 0, 0)] if table == "image_refs" and version == 2 else [])
        assert _columns(conn, table) == expected, table
    # num_events defaults to 0
    dflt = {r[1]: r[4] for r in conn.execute("PRAGMA table_info(runs)")}
    assert dflt["num_events"] == "0"
    assert Database(path).schema_version == max(version, 1)
    conn.close()


def test_indexes_and_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path):
        pass
    conn = _ro(path)

    def index_cols(name: str) -> list[str]:
        return [r[2] for r in conn.execute(f"PRAGMA index_info({name})")]

    assert index_cols("idx_samples_name") == ["name"]
    assert index_cols("idx_runs_sample") == ["sample_id"]
    assert index_cols("idx_runs_plan") == ["plan_name"]
    assert index_cols("idx_runs_tstart") == ["time_start"]
    assert index_cols("idx_streams_run_name") == ["run_uid", "name"]
    assert index_cols("idx_events_seq") == ["stream_uid", "seq_num"]
    unique = {r[1]: r[2] for t in ("streams", "events") for r in conn.execute(f"PRAGMA index_list({t})")}
    assert unique["idx_streams_run_name"] == 1 and unique["idx_events_seq"] == 1
    ir_indexes = [r[1] for r in conn.execute("PRAGMA index_list(image_refs)")]
    assert any(index_cols(i) == ["event_uid"] for i in ir_indexes)
    fks = {
        t: {(r[2], r[3], r[4], r[6]) for r in conn.execute(f"PRAGMA foreign_key_list({t})")}
        for t in ("runs", "streams", "events", "image_refs")
    }
    assert fks["runs"] == {("samples", "sample_id", "id", "SET NULL")}
    assert fks["streams"] == {("runs", "run_uid", "uid", "CASCADE")}
    assert fks["events"] == {("streams", "stream_uid", "uid", "CASCADE")}
    assert fks["image_refs"] == {("events", "event_uid", "uid", "CASCADE")}
    conn.close()


def test_uids_are_32_char_lowercase_hex_and_seeded(tmp_path: Path) -> None:
    uids = []
    for name in ("a.db", "b.db"):
        with BeamtimeWriter(tmp_path / name, seed=3) as w:
            uids.append(w.open_run("scan", time=T0))
    assert uids[0] == uids[1]
    assert len(uids[0]) == 32 and all(c in "0123456789abcdef" for c in uids[0])


def test_seq_num_counts_per_run_across_streams(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        uid1, _ = write_nexafs(w, T0, n=4)  # baseline 1 event, then primary 4
        uid2, _ = write_nexafs(w, T0 + 50, n=2)
    db = Database(path)
    assert records.stream_events(db, uid1, "baseline").seq_num.tolist() == [1]
    assert records.stream_events(db, uid1, "primary").seq_num.tolist() == [2, 3, 4, 5]
    # a new run starts again at 1
    assert records.stream_events(db, uid2, "baseline").seq_num.tolist() == [1]
    assert records.stream_events(db, uid2, "primary").seq_num.tolist() == [2, 3]
    assert records.get_run(db, uid1).num_events == 5
    assert records.get_run(db, uid2).num_events == 3


def test_commit_timing_seen_by_second_connection(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    w = BeamtimeWriter(path).open()
    try:
        uid = w.open_run("scan", sample="PS", time=T0, operator="eve")
        reader = _ro(path)
        assert reader.execute(
            "SELECT plan_name, time_start, time_stop, exit_status, num_events, operator FROM runs WHERE uid = ?",
            (uid,),
        ).fetchall() == [("scan", T0, None, None, 0, "eve")]
        w.open_stream("primary", NEXAFS_KEYS, time=T0)
        assert reader.execute("SELECT name FROM streams").fetchall() == [("primary",)]
        ev = w.write_event({"i0": 1.0}, time=T0 + 1)
        w.write_image(ev, "detector_image", np.zeros((2, 3), np.int32))
        # events and image refs are not committed yet
        assert reader.execute("SELECT count(*) FROM events").fetchone() == (0,)
        assert reader.execute("SELECT count(*) FROM image_refs").fetchone() == (0,)
        # ...but the frame is in Zarr at once
        arr = zarr.open_array(str(w.zarr_path), path=f"runs/{uid}/detector_image", mode="r")
        assert arr.shape == (1, 2, 3)
        # opening the next stream commits the events so far
        w.open_stream("baseline", {}, time=T0 + 2)
        assert reader.execute("SELECT seq_num FROM events").fetchall() == [(1,)]
        assert reader.execute("SELECT count(*) FROM image_refs").fetchone() == (1,)
        w.write_event({}, time=T0 + 3)
        assert reader.execute("SELECT count(*) FROM events").fetchone() == (1,)
        assert reader.execute("SELECT num_events FROM runs").fetchone() == (0,)
        w.close_run("aborted", time=T0 + 4)
        assert reader.execute("SELECT count(*) FROM events").fetchone() == (2,)
        assert reader.execute("SELECT time_stop, exit_status, num_events FROM runs").fetchall() == [
            (T0 + 4, "aborted", 2)
        ]
        reader.close()
    finally:
        w.close()


def test_context_manager_closes_open_run_as_failed_on_error(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with pytest.raises(RuntimeError, match="boom"):
        with BeamtimeWriter(path) as w:
            uid = w.open_run("scan", time=T0)
            raise RuntimeError("boom")
    assert records.get_run(Database(path), uid).exit_status == "failed"


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_zarr_layout(tmp_path: Path, zarr_format: int) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path, zarr_format=zarr_format) as w:
        uid, _, frames = write_rsoxs(w, T0, n=4)
    root = zarr.open_group(str(tmp_path / "bt.zarr"), mode="r")
    assert root.metadata.zarr_format == zarr_format
    arr = root[f"runs/{uid}/detector_image"]
    assert arr.metadata.zarr_format == zarr_format
    assert arr.shape == (4, 6, 5) and arr.chunks == (1, 6, 5) and arr.dtype == np.int32
    np.testing.assert_array_equal(arr[:], frames)
    conn = _ro(path)
    rows = conn.execute(
        "SELECT e.seq_num, ir.field_name, ir.zarr_group, ir.index_in_stack, ir.shape_x, ir.shape_y, ir.dtype "
        "FROM image_refs ir JOIN events e ON e.uid = ir.event_uid ORDER BY e.seq_num"
    ).fetchall()
    assert rows == [(i + 1, "detector_image", f"runs/{uid}/detector_image", i, 6, 5, "int32") for i in range(4)]
    conn.close()


@pytest.mark.parametrize("version", [0, 1, 2])
def test_compression_codec_only_in_schema_2(tmp_path: Path, version: int) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path, schema_version=version) as w:
        write_rsoxs(w, T0, n=2)
    conn = _ro(path)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(image_refs)")]
    if version == 2:
        assert conn.execute("SELECT DISTINCT compression_codec FROM image_refs").fetchall() == [("blosc",)]
    else:
        assert "compression_codec" not in cols
    conn.close()


@pytest.mark.parametrize(("version", "zarr_format"), [(0, 3), (1, 3), (2, 3), (2, 2), (1, 2)])
def test_round_trip_versions_and_zarr_formats(tmp_path: Path, version: int, zarr_format: int) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path, schema_version=version, zarr_format=zarr_format, seed=1) as w:
        nexafs, nev = write_nexafs(w, T0, n=3)
        rsoxs, rev, frames = write_rsoxs(w, T0 + 100, n=3)
    db = Database(path)
    assert db.schema_version == max(version, 1)
    runs = records.list_runs(db)
    assert [(r.uid, r.plan_name, r.sample_name, r.operator, r.exit_status) for r in runs] == [
        (nexafs, "nexafs", "PS", "alice", "success"),
        (rsoxs, "rsoxs", "P3HT", "bob", "success"),
    ]
    assert runs[0].time_start == T0 and runs[0].time_stop == T0 + 4
    assert runs[0].metadata(db) == {"edge": "C", "purpose": "ref"}
    ev = records.stream_events(db, nexafs, "primary")
    assert ev.columns == {k: [e[k] for e in nev] for k in NEXAFS_KEYS}
    assert ev.time.tolist() == [T0 + 1 + i for i in range(3)]
    streams = records.list_streams(db, rsoxs)
    assert [(s.name, s.data_keys) for s in streams] == [("primary", IMAGE_KEYS)]
    refs = records.frame_refs(db, rsoxs, "detector_image", "primary")
    stack = FrameStack(db.zarr_path, refs)
    np.testing.assert_array_equal(stack[:], frames)
    assert records.stream_events(db, rsoxs, "primary").columns == {
        "energy_position": [e["energy_position"] for e in rev],
        "exposure": [0.1] * 3,
    }


def test_sample_name_reuse_returns_first_row(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        first = w.add_sample("PS", formula="C8H8", tags=["ref"], extra={"thick_nm": 50})
        # a second row with the same name made by hand: the writer still picks the first
        w.connection.execute("INSERT INTO samples (name, formula) VALUES ('PS', 'other')")
        w.connection.commit()
        assert w.add_sample("PS", formula="ignored") == first
        other = w.add_sample("P3HT")
        assert other != first
        uid = w.open_run("scan", sample="PS", time=T0)
        w.close_run(time=T0 + 0.5)
        uid_by_id = w.open_run("scan", sample=other, time=T0 + 1)
    db = Database(path)
    run = records.get_run(db, uid)
    assert run.sample_id == first
    sample = records.get_sample(db, first)
    assert sample == records.SampleRecord(first, "PS", "C8H8", None, ["ref"], None, {"thick_nm": 50})
    assert records.get_run(db, uid_by_id).sample_name == "P3HT"
    conn = _ro(path)
    assert conn.execute("SELECT count(*) FROM samples WHERE name = 'PS'").fetchone() == (2,)
    conn.close()


def test_event_timestamps_and_raw_data(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        w.open_run("scan", time=T0)
        w.open_stream("primary", {}, time=T0)
        w.write_event({"a": 1}, time=T0 + 1, timestamps={"a": T0 + 0.5})
        w.write_event({}, time=T0 + 2, raw_data='{"b": "raw"}')
    conn = _ro(path)
    rows = conn.execute("SELECT data, timestamps FROM events ORDER BY seq_num").fetchall()
    assert orjson.loads(rows[0][0]) == {"a": 1} and orjson.loads(rows[0][1]) == {"a": T0 + 0.5}
    assert rows[1] == ('{"b": "raw"}', "{}")
    conn.close()


def test_write_image_out_of_order_index(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    frames = np.arange(3 * 2 * 2, dtype=np.uint16).reshape(3, 2, 2)
    with BeamtimeWriter(path) as w:
        uid = w.open_run("scan", time=T0)
        w.open_stream("primary", {}, time=T0)
        evs = [w.write_event({"i": i}, time=T0 + i) for i in range(3)]
        assert [w.write_image(evs[i], "img", frames[i], index=k) for i, k in enumerate([2, 0, 1])] == [2, 0, 1]
    arr = zarr.open_array(str(tmp_path / "bt.zarr"), path=f"runs/{uid}/img", mode="r")
    np.testing.assert_array_equal(arr[:], frames[[1, 2, 0]])
    db = Database(path)
    refs = records.frame_refs(db, uid, "img", "primary")
    assert refs.index.tolist() == [2, 0, 1]
    np.testing.assert_array_equal(FrameStack(db.zarr_path, refs)[:], frames)


def test_writer_misuse_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="schema_version"):
        BeamtimeWriter(tmp_path / "x.db", schema_version=3)
    w = BeamtimeWriter(tmp_path / "x.db")
    with pytest.raises(RuntimeError, match="not open"):
        w.connection
    w.open()
    with pytest.raises(RuntimeError, match="no open stream"):
        w.open_run("scan", time=T0) and w.write_event({})
    with pytest.raises(RuntimeError, match="still open"):
        w.open_run("scan", time=T0)
    with pytest.raises(ValueError, match="2-D"):
        w.write_image("e", "img", np.zeros(3))
    w.close_run()
    with pytest.raises(RuntimeError, match="no open run"):
        w.open_stream("primary", {})
    w.close()
