"""A busy beamtime is not a broken one: a writer's lock is waited for, then BeamtimeBusyError."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dask
import pytest
from conftest import T0, Written, write_rsoxs
from hostile import FACES, beamtime_digest, cli_refuses, raises, small_beamtime

from intake_resonance import Catalog
from intake_resonance.beamtime.errors import BeamtimeBusyError
from intake_resonance.beamtime.format import Database
from intake_resonance.tools.writer import BeamtimeWriter

WORDS = ("locked by a writer", "try again", "resonance.busy-timeout")


@pytest.fixture
def bt(tmp_path: Path) -> Written:
    return small_beamtime(tmp_path)


@contextmanager
def writer_lock(path: Path) -> Iterator[None]:
    """Hold the lock a writer holds while it commits (rollback journal: readers must wait)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        with dask.config.set({"resonance.busy-timeout": 0.2}):
            yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


@pytest.mark.parametrize("face", FACES)
def test_locked_beamtime_is_busy_not_broken(bt: Written, face: str) -> None:
    uid = bt.uids["rsoxs"]
    with writer_lock(bt.path):
        before = beamtime_digest(bt.path)
        raises(face, bt.path, uid, BeamtimeBusyError, bt.path, *WORDS)
        assert beamtime_digest(bt.path) == before
    # Once the writer is done the same call reads.
    ds = FACES[face](bt.path, bt.uids["nexafs"])
    assert ds is None if face == "facade" else ds["i0"].values.tolist() == [e["i0"] for e in bt.events["nexafs"]]


def test_lock_taken_after_open(bt: Written) -> None:
    with Catalog(bt.path) as cat:
        assert len(cat.recent()) == 2
        with writer_lock(bt.path), pytest.raises(BeamtimeBusyError):
            cat.recent()
        assert len(cat.recent()) == 2


def test_cli_is_busy(bt: Written) -> None:
    with writer_lock(bt.path):
        cli_refuses("ls", bt.path, words=WORDS)
        cli_refuses("check", bt.path, words=WORDS)


def test_busy_is_not_a_format_error(bt: Written) -> None:
    with writer_lock(bt.path), pytest.raises(BeamtimeBusyError) as info:
        Database(bt.path)
    assert not isinstance(info.value, sqlite3.Error)
    with Database(bt.path) as db:  # nothing was left half-open
        assert db.query("SELECT count(*) FROM runs") == [(2,)]


def test_a_hot_journal_is_an_unfinished_write_not_a_broken_file(tmp_path: Path) -> None:
    """A writer that died mid-transaction leaves a hot journal: one clear error, nothing touched, readable once rolled back."""
    import shutil
    from contextlib import closing

    from intake_resonance import UnfinishedWriteError
    from intake_resonance.beamtime import records
    from intake_resonance.tools.check import check

    src = tmp_path / "live" / "bt.db"
    with BeamtimeWriter(src) as w:
        uids = [write_rsoxs(w, T0 + 100 * k)[0] for k in range(5)]
    with closing(sqlite3.connect(src)) as conn:
        conn.execute("PRAGMA cache_size = 1")  # pages spill into the .db mid-transaction, as a long write's do
        conn.execute("BEGIN IMMEDIATE")
        for _ in range(20):
            conn.execute("UPDATE events SET data = data || ' '")
            conn.execute("UPDATE runs SET metadata = ?", ("x" * 5000,))
        shutil.copytree(src.parent, tmp_path / "crashed")  # the files as a crash leaves them: no lock, the journal hot
        conn.rollback()
    crashed = tmp_path / "crashed" / "bt.db"
    assert (tmp_path / "crashed" / "bt.db-journal").stat().st_size > 0
    before = beamtime_digest(crashed)
    with pytest.raises(UnfinishedWriteError, match=r"stopped mid-transaction and left bt\.db-journal behind.*read-write") as err:
        with Database(crashed) as db:
            records.list_uids(db)
    assert str(crashed) in str(err.value)
    with pytest.raises(UnfinishedWriteError):
        check(crashed)  # not a finding about a broken file: the file is whole once rolled back
    assert beamtime_digest(crashed) == before  # the reader rolled nothing back itself
    with closing(sqlite3.connect(crashed)) as conn:
        conn.execute("PRAGMA quick_check").fetchall()  # what the message tells: one read-write open
    with Database(crashed) as db:
        assert records.list_uids(db) == uids
