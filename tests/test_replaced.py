"""Files change under us: a replaced .db (rsync lands a new inode) is read afresh, a deleted one is an error."""

from __future__ import annotations

import os
from pathlib import Path

import intake
import pytest
from conftest import T0, write_nexafs

from intake_resonance import Catalog
from intake_resonance.beamtime.errors import BeamtimeNotFoundError
from intake_resonance.beamtime.format import Database
from intake_resonance.tools.writer import BeamtimeWriter


def _write(path: Path, n_runs: int) -> list[str]:
    with BeamtimeWriter(path, seed=n_runs) as w:
        return [write_nexafs(w, T0 + 100 * i)[0] for i in range(n_runs)]


def _replace(path: Path, n_runs: int) -> list[str]:
    """What rsync does: write a new file beside, then rename it over the old name."""
    new = path.with_name(".incoming.db")
    uids = _write(new, n_runs)
    os.replace(new, path)
    return uids


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "beamtime.db"
    _write(p, 1)
    return p


def test_database_refresh(path: Path) -> None:
    with Database(path) as db:
        assert db.refresh() is False  # nothing opened yet, nothing to notice
        assert db.query("SELECT count(*) FROM runs") == [(1,)]
        assert db.refresh() is False
        _replace(path, 3)
        assert db.query("SELECT count(*) FROM runs") == [(1,)]  # SQLite still reads the old inode
        assert db.refresh() is True
        assert db.query("SELECT count(*) FROM runs") == [(3,)]
        os.remove(path)
        with pytest.raises(BeamtimeNotFoundError, match="deleted"):
            db.refresh()


def test_intake_reload_sees_the_new_file(path: Path) -> None:
    cat = intake.open_resonance_beamtime(str(path))
    try:
        assert len(list(cat)) == 1
        uids = _replace(path, 3)
        cat.reload()
        assert list(cat) == uids
        assert cat[-1].read()["i0"].size == 8
        os.remove(path)
        with pytest.raises(BeamtimeNotFoundError) as info:
            cat.reload()
        assert str(path) in str(info.value) and "deleted" in str(info.value)
    finally:
        cat.close()


def test_intake_ttl_refresh_sees_the_new_file(path: Path) -> None:
    cat = intake.open_resonance_beamtime(str(path), ttl=0)
    try:
        assert len(list(cat)) == 1
        uids = _replace(path, 2)
        assert list(cat) == uids
    finally:
        cat.close()


def test_facade_never_serves_the_old_file(path: Path) -> None:
    with Catalog(path) as cat:
        assert len(cat.recent()) == 1
        uids = _replace(path, 2)
        assert [r.uid for r in cat.recent()] == uids[::-1]
        assert cat[uids[0]].table()["i0"].size == 8
        os.remove(path)
        with pytest.raises(BeamtimeNotFoundError, match="deleted"):
            cat.recent()
