"""records.run_fields: fields, dtypes, units and counts without reading the table."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from conftest import BASELINE_KEYS, IMAGE_KEYS, NEXAFS_KEYS, T0, write_nexafs, write_rsoxs

from intake_resonance.beamtime import records
from intake_resonance.beamtime.format import Database
from intake_resonance.tools.writer import BeamtimeWriter


def test_fields_of_scalar_and_image_runs(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        nexafs, _ = write_nexafs(w, T0, n=8)
        rsoxs, _, _ = write_rsoxs(w, T0 + 100, n=5)
    with Database(path) as db:
        streams = records.run_fields(db, nexafs)
        assert [(s.name, s.n_events) for s in streams] == [("baseline", 1), ("primary", 8)]
        primary = streams[1]
        assert [f.name for f in primary.fields] == list(NEXAFS_KEYS)
        assert [(f.dtype, f.shape, f.units, f.source, f.external) for f in primary.fields] == [
            ("float64", (), d["units"], d["source"], False) for d in NEXAFS_KEYS.values()
        ]
        assert [f.name for f in streams[0].fields] == list(BASELINE_KEYS)
        (image,) = records.run_fields(db, rsoxs)
        det = {f.name: f for f in image.fields}["detector_image"]
        assert (det.dtype, det.shape, det.external, det.descriptor) == ("int32", (6, 5), True, IMAGE_KEYS["detector_image"])


def test_reads_only_the_first_events(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        uid = w.open_run("scan", time=T0)
        w.open_stream("primary", {"e": {"dtype": "number", "units": "eV"}, "never": {"dtype": "integer"}}, time=T0)
        for i in range(10):
            w.write_event({"e": 280.0 + i, "n": i, "flag": True, "name": "PS", "spec": [1, 2, 3]}, time=T0 + i)
        w.close_run(time=T0 + 20)
    with closing(sqlite3.connect(path)) as conn, conn:  # a broken event beyond the sampled ones is not read
        conn.execute("UPDATE events SET data = 'broken' WHERE seq_num = 9")
    with Database(path) as db:
        (primary,) = records.run_fields(db, uid)
    assert primary.n_events == 10
    got = {f.name: (f.dtype, f.shape, f.units) for f in primary.fields}
    assert got == {
        "e": ("float64", (), "eV"),
        "never": ("int64", (), None),  # declared, in no event: the descriptor's dtype
        "n": ("int64", (), None),
        "flag": ("bool", (), None),
        "name": ("str", (), None),
        "spec": ("int64", (3,), None),
    }


def test_counts_when_streams_interleave_or_run_is_open(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        uid = w.open_run("scan", time=T0)
        w.open_stream("primary", {}, time=T0)
        w.write_event({"a": 1.0}, time=T0)
        w.open_stream("monitor", {}, time=T0)
        w.write_event({"b": 1.0}, time=T0 + 1)
        w.connection.commit()
        # seq 1 primary, seq 2 monitor, then primary again: spans overlap
        w.connection.execute("UPDATE events SET seq_num = 3 WHERE seq_num = 1")
        w.connection.execute("UPDATE events SET seq_num = 1 WHERE seq_num = 2")
        w.connection.commit()
    with Database(path) as db:
        assert [(s.name, s.n_events) for s in records.run_fields(db, uid)] == [("primary", 1), ("monitor", 1)]
