"""BeamtimeWriter.write_events writes exactly the rows write_event would."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import NEXAFS_KEYS, T0

from intake_resonance.beamtime import records
from intake_resonance.beamtime.format import Database
from intake_resonance.tools.writer import BeamtimeWriter

EVENTS = [
    {"energy_position": 280.0, "i0": 1.0, "photodiode": 0.5},
    {"energy_position": 280.5, "i0": None},
    {"energy_position": 281.0, "i0": 1.02, "photodiode": 0.54, "note": "tweak"},
]
STAMPS = [{"i0": T0 + 0.5}, None, {}]


def _rows(path: Path) -> list[tuple]:
    conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT e.uid, s.name, e.seq_num, e.time, e.data, e.timestamps FROM events e "
            "JOIN streams s ON s.uid = e.stream_uid ORDER BY e.rowid"
        ).fetchall()
    finally:
        conn.close()


def _write(path: Path, bulk: bool) -> tuple[str, list[str]]:
    with BeamtimeWriter(path, seed=11) as w:
        uid = w.open_run("nexafs", time=T0)
        w.open_stream("baseline", {}, time=T0)
        first = w.write_event({"beam_current": 500.0}, time=T0 + 0.1)
        w.open_stream("primary", NEXAFS_KEYS, time=T0 + 0.2)
        times = [T0 + 1 + i for i in range(len(EVENTS))]
        if bulk:
            uids = w.write_events(EVENTS, time=times, timestamps=STAMPS)
        else:
            uids = [w.write_event(d, time=t, timestamps=ts) for d, t, ts in zip(EVENTS, times, STAMPS)]
        w.close_run("success", time=T0 + 10)
    return uid, [first, *uids]


def test_bulk_rows_equal_one_by_one_rows(tmp_path: Path) -> None:
    uid_a, uids_a = _write(tmp_path / "a.db", bulk=False)
    uid_b, uids_b = _write(tmp_path / "b.db", bulk=True)
    assert (uid_a, uids_a) == (uid_b, uids_b)  # same seeded uids, same order
    rows = _rows(tmp_path / "b.db")
    assert rows == _rows(tmp_path / "a.db")
    # seq_num continues across streams: baseline 1, primary 2..4
    assert [(r[1], r[2]) for r in rows] == [("baseline", 1), ("primary", 2), ("primary", 3), ("primary", 4)]
    assert [r[0] for r in rows] == uids_b


def test_bulk_events_read_back_and_count(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    uid, _ = _write(path, bulk=True)
    db = Database(path)
    ev = records.stream_events(db, uid, "primary", missing=None)
    assert ev.seq_num.tolist() == [2, 3, 4]
    assert ev.time.tolist() == [T0 + 1, T0 + 2, T0 + 3]
    assert ev.columns["i0"] == [1.0, None, 1.02]
    assert ev.columns["note"] == [None, None, "tweak"]
    assert records.get_run(db, uid).num_events == 4


def test_bulk_then_single_keeps_counting(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        uid = w.open_run("scan", time=T0)
        w.open_stream("primary", {}, time=T0)
        assert w.write_events([], time=[]) == []
        w.write_events([{"a": 1}, {"a": 2}], time=[T0 + 1, T0 + 2])
        w.write_event({"a": 3}, time=T0 + 3)
    ev = records.stream_events(Database(path), uid, "primary")
    assert ev.seq_num.tolist() == [1, 2, 3]
    assert ev.columns["a"] == [1, 2, 3]


def test_bulk_misuse_raises(tmp_path: Path) -> None:
    with BeamtimeWriter(tmp_path / "bt.db") as w:
        with pytest.raises(RuntimeError, match="no open stream"):
            w.write_events([{"a": 1}], time=[T0])
        w.open_run("scan", time=T0)
        w.open_stream("primary", {}, time=T0)
        with pytest.raises(ValueError, match="same length"):
            w.write_events([{"a": 1}], time=[T0, T0 + 1])
        with pytest.raises(ValueError, match="same length"):
            w.write_events([{"a": 1}], time=[T0], timestamps=[])
