"""A crafted sqlite_stat1 (or sqlite_stat4) cannot make our per-run queries slow.

Work is counted in SQLite's own virtual-machine steps (a progress handler on
our read-only connection), so the bound holds on any machine: each read of
the crafted file stays within a small factor of the same read of the plain one.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import T0, write_nexafs, write_rsoxs

from intake_resonance.beamtime import records
from intake_resonance.beamtime.format import Database
from intake_resonance.beamtime.plans import has_statistics, indexed_by
from intake_resonance.datasets.open import open_run_dataset
from intake_resonance.tools.writer import BeamtimeWriter

STEP = 100  # VM instructions per progress-handler call


def _craft(path: Path) -> None:
    """Statistics that lie: every table one row, every index matching everything."""
    conn = sqlite3.connect(path)
    conn.execute("ANALYZE")
    indexes = conn.execute("SELECT tbl, idx FROM sqlite_stat1 WHERE idx IS NOT NULL").fetchall()
    conn.execute("DELETE FROM sqlite_stat1")
    for table in ("runs", "samples", "streams", "events", "image_refs"):
        conn.execute("INSERT INTO sqlite_stat1 VALUES (?, NULL, '1')", (table,))
    for table, index in indexes:
        conn.execute("INSERT INTO sqlite_stat1 VALUES (?, ?, ?)", (table, index, "1000000000 1000000000 1000000000"))
    has_stat4 = conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat4'").fetchone()[0]
    if has_stat4:  # SQLite built with STAT4: samples claiming every key is everywhere
        conn.execute("UPDATE sqlite_stat4 SET neq = '1000000000 1000000000', nlt = '0 0', ndlt = '0 0'")
    conn.commit()
    conn.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("stats")
    plain = folder / "plain.db"
    with BeamtimeWriter(plain, seed=12) as w:
        w.connection.execute("PRAGMA synchronous = OFF")
        nexafs = [write_nexafs(w, T0 + 100 * i, n=30, sample=f"S{i}")[0] for i in range(120)]
        rsoxs, _, frames = write_rsoxs(w, T0 + 100 * 200, n=12)
    crafted = folder / "crafted.db"
    shutil.copy(plain, crafted)
    shutil.copytree(plain.with_suffix(".zarr"), crafted.with_suffix(".zarr"))
    _craft(crafted)
    return {"plain": plain, "crafted": crafted, "nexafs": nexafs, "rsoxs": rsoxs, "frames": frames}


def _steps(path: Path, read: Callable[[Database], Any]) -> tuple[int, Any]:
    db = Database(path)
    db.query("SELECT 1")  # open, check the schema and find the plans before counting
    read(db)
    calls = [0]

    def tick() -> int:
        calls[0] += 1
        return 0

    db._connect().set_progress_handler(tick, STEP)
    out = read(db)
    db.close()
    return calls[0] * STEP, out


READS: dict[str, Callable[[Database, dict[str, Any]], Any]] = {
    "get_run": lambda db, f: records.get_run(db, f["nexafs"][60]),
    "list_streams": lambda db, f: [s.name for s in records.list_streams(db, f["nexafs"][60])],
    "event_table": lambda db, f: records.event_table(db, f["nexafs"][60], "primary").seq_num.tolist(),
    "stream_events": lambda db, f: records.stream_events(db, f["nexafs"][60], "primary").seq_num.tolist(),
    "run_counts": lambda db, f: records.run_counts(db, f["rsoxs"]),
    "frame_refs": lambda db, f: records.frame_refs(db, f["rsoxs"], "detector_image", "primary").index.tolist(),
    "image_fields": lambda db, f: records.image_fields(db, f["rsoxs"], "primary"),
    "list_uids": lambda db, f: records.list_uids(db),
    "runs_table": lambda db, f: records.runs_table(db),
    "search by sample": lambda db, f: [r.uid for r in records.list_runs(db, records.RunQuery().narrow(sample="S7"))],
    "runs_by_sample": lambda db, f: [r.uid for r in records.runs_by_sample(db, "S9")],
    "recent": lambda db, f: [r.uid for r in records.recent_runs(db, 5)],
    "match_uids": lambda db, f: records.match_uids(db, f["nexafs"][3][:8]),
    "many_event_tables": lambda db, f: (
        lambda m: (m.events.seq_num.tolist(), m.offsets.tolist())
    )(records.many_event_tables(db, f["nexafs"][:50], "primary")),
    "run_fields": lambda db, f: [(s.name, [x.name for x in s.fields]) for s in records.run_fields(db, f["nexafs"][60])],
}


def test_only_files_with_statistics_get_fixed_plans(files: dict[str, Any]) -> None:
    plain, crafted = Database(files["plain"]), Database(files["crafted"])
    assert not has_statistics(plain) and indexed_by(plain, "events", "stream_uid", "seq_num") == ""
    assert has_statistics(crafted) and indexed_by(crafted, "events", "stream_uid", "seq_num") == ' INDEXED BY "idx_events_seq"'
    plain.close()
    crafted.close()


@pytest.mark.parametrize("name", list(READS))
def test_crafted_statistics_cannot_slow_a_read(files: dict[str, Any], name: str) -> None:
    read = READS[name]
    plain_steps, plain_out = _steps(files["plain"], lambda db: read(db, files))
    crafted_steps, crafted_out = _steps(files["crafted"], lambda db: read(db, files))
    assert crafted_out == plain_out
    assert crafted_steps <= 2 * plain_steps + 20 * STEP, (name, plain_steps, crafted_steps)


def test_datasets_equal_on_both(files: dict[str, Any]) -> None:
    for uid in (files["nexafs"][60], files["rsoxs"]):
        a = open_run_dataset(str(files["plain"]), uid)
        b = open_run_dataset(str(files["crafted"]), uid)
        assert set(a.variables) == set(b.variables)
        for var in a.variables:
            np.testing.assert_array_equal(a[var].values, b[var].values)


def test_an_index_of_our_name_on_other_columns_is_not_named(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path, seed=3) as w:
        uid, _ = write_nexafs(w, T0)
    conn = sqlite3.connect(path)
    conn.execute("DROP INDEX idx_events_seq")
    conn.execute("CREATE INDEX idx_events_seq ON events(time)")  # a hostile file's index of that name
    conn.execute("CREATE INDEX idx_partial ON events(stream_uid, seq_num) WHERE seq_num > 1000")
    conn.execute("ANALYZE")
    conn.commit()
    conn.close()
    db = Database(path)
    assert indexed_by(db, "events", "stream_uid", "seq_num") == ""  # neither the impostor nor the partial one
    assert records.stream_events(db, uid, "primary").seq_num.tolist() == list(range(2, 10))
    db.close()
