"""A busy beamtime is not a broken one: a writer's lock is waited for, then BeamtimeBusyError."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dask
import pytest
from conftest import T0, Written, write_nexafs, write_rsoxs
from hostile import FACES, beamtime_digest, cli_refuses, raises

from intake_resonance import Catalog
from intake_resonance.errors import BeamtimeBusyError
from intake_resonance.format import Database
from intake_resonance.writer import BeamtimeWriter

WORDS = ("locked by a writer", "try again", "resonance.busy-timeout")


@pytest.fixture
def bt(tmp_path: Path) -> Written:
    out = Written(tmp_path / "bt" / "beamtime.db")
    out.path.parent.mkdir()
    with BeamtimeWriter(out.path, seed=3) as w:
        out.uids["nexafs"], out.events["nexafs"] = write_nexafs(w, T0)
        out.uids["rsoxs"], out.events["rsoxs"], out.frames["rsoxs"] = write_rsoxs(w, T0 + 100)
    return out


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
