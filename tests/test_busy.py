"""A busy beamtime is not a broken one: a writer's lock is waited for, then BeamtimeBusyError."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dask
import pytest
from conftest import Written
from hostile import FACES, beamtime_digest, cli_refuses, raises, small_beamtime

from intake_resonance import Catalog
from intake_resonance.beamtime.errors import BeamtimeBusyError
from intake_resonance.beamtime.format import Database

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
