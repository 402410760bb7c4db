"""Reading never writes: no byte changes, no file appears, nothing opens for writing."""

from __future__ import annotations

import builtins
import hashlib
import os
import pickle
import shutil
import sqlite3
import stat
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import T0, write_nexafs, write_rsoxs

from intake_resonance.beamtime import records
from intake_resonance.beamtime.errors import BeamtimeFormatError
from intake_resonance.beamtime.format import Database
from intake_resonance.beamtime.frames import FrameStack
from intake_resonance.tools.writer import BeamtimeWriter

NOBODY = 65534


def _snapshot(db_path: Path) -> dict[str, str]:
    """Hash of the .db, its -wal/-journal/-shm neighbours and every file under the .zarr,
    plus the listing of the folder (every name, also ones we did not expect)."""
    out = {"<listing>": "\n".join(sorted(os.listdir(db_path.parent)))}
    for suffix in ("", "-wal", "-journal", "-shm"):
        p = db_path.with_name(db_path.name + suffix)
        out[p.name] = hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else "<absent>"
    store = db_path.with_suffix(".zarr")
    for dirpath, dirnames, filenames in os.walk(store):
        for d in dirnames:
            out[os.path.join(dirpath, d)] = "<dir>"
        for f in filenames:
            p = Path(dirpath, f)
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _write(path: Path, **kwargs) -> dict[str, str]:
    with BeamtimeWriter(path, seed=5, **kwargs) as w:
        write_nexafs(w, T0)
        uid, _, _ = write_rsoxs(w, T0 + 100, n=4)
        w.add_sample("PS", formula="C8H8")
        # one open run with a committed stream, as on a live beamtime
        live = w.open_run("rsoxs", sample="PS", time=T0 + 200)
        w.open_stream("primary", {}, time=T0 + 200)
        ev = w.write_event({"a": 1}, time=T0 + 201)
        w.write_image(ev, "detector_image", np.ones((6, 5), np.int32))
        w.open_stream("baseline", {}, time=T0 + 202)
        w.close()  # the run stays open
    return {"rsoxs": uid, "live": live}


def _exercise(path: Path) -> int:
    """The whole read API of format, records and frames; returns frames read."""
    db = Database(path)
    db.query("SELECT count(*) FROM events")
    db.zarr_path
    n_frames = 0
    runs = records.list_runs(db)
    assert len(runs) == 3
    records.list_runs(db, records.RunQuery())
    records.list_uids(db)
    records.runs_table(db)
    records.recent_runs(db, 10)
    records.runs_by_sample(db, "PS")
    for run in runs:
        assert records.get_run(db, run.uid) == run
        records.match_uids(db, run.uid[:6])
        assert records.resolve_uid(db, run.uid[:12]) == run.uid
        run.metadata(db)
        records.get_sample(db, run.sample_id)
        for stream in records.list_streams(db, run.uid):
            records.stream_events(db, run.uid, stream.name)
            for field in records.image_fields(db, run.uid, stream.name):
                refs = records.frame_refs(db, run.uid, field, stream.name)
                stack = FrameStack(db.zarr_path, refs, db.path, run=run.uid, stream=stream.name, field=field)
                n_frames += len(stack[:]) + stack[[0, -1]].shape[0] + stack[0].ndim - 2
                n_frames += len(pickle.loads(pickle.dumps(stack))[::-1])
        for field in records.image_fields(db, run.uid):
            records.frame_refs(db, run.uid, field)
    pickle.loads(pickle.dumps(db)).query("PRAGMA user_version")
    db.close()
    return n_frames


@pytest.fixture
def beamtime_rb(tmp_path: Path) -> Path:
    path = tmp_path / "bt.db"
    _write(path)
    return path


def test_reading_changes_and_creates_nothing(beamtime_rb: Path) -> None:
    before = _snapshot(beamtime_rb)
    assert before["bt.db-journal"] == "<absent>"
    assert _exercise(beamtime_rb) == (4 + 2 + 4) + (1 + 2 + 1)  # rsoxs run, live run
    assert _snapshot(beamtime_rb) == before


def test_nothing_opens_for_writing(beamtime_rb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = str(beamtime_rb.parent)
    connects: list[tuple] = []
    writes: list[str] = []
    real_connect, real_open, real_os_open = sqlite3.connect, builtins.open, os.open

    def connect(database, *args, **kwargs):  # noqa: ANN001, ANN202
        connects.append((str(database), kwargs.get("uri")))
        return real_connect(database, *args, **kwargs)

    def open_(file, mode="r", *args, **kwargs):  # noqa: ANN001, ANN202
        if str(file).startswith(folder) and set(str(mode)) & set("wax+"):
            writes.append(f"open({file!r}, {mode!r})")
        return real_open(file, mode, *args, **kwargs)

    def os_open(file, flags, *args, **kwargs):  # noqa: ANN001, ANN202
        if str(file).startswith(folder) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND):
            writes.append(f"os.open({file!r}, {flags})")
        return real_os_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(os, "open", os_open)
    _exercise(beamtime_rb)
    assert connects and all(uri and db.startswith("file:") and "mode=ro" in db for db, uri in connects), connects
    assert writes == []


def test_readonly_sqlite_refuses_writes(beamtime_rb: Path) -> None:
    db = Database(beamtime_rb)
    for sql in ("PRAGMA user_version=5", "UPDATE runs SET plan_name = 'x'", "CREATE TABLE t (x)", "PRAGMA query_only=OFF"):
        try:
            db.query(sql)
        except BeamtimeFormatError as exc:
            assert str(beamtime_rb) in str(exc)
    with pytest.raises(BeamtimeFormatError, match="readonly"):  # even after query_only=OFF, mode=ro holds
        db.query("DELETE FROM runs")
    conn = sqlite3.connect(beamtime_rb)
    assert conn.execute("PRAGMA user_version").fetchone() == (2,)
    assert {r[0] for r in conn.execute("SELECT plan_name FROM runs")} == {"nexafs", "rsoxs"}
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 't'").fetchone() == (0,)
    conn.close()


# ----------------------------------------------------------- read-only directory
@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder another user can reach (pytest's tmp_path is private to root)."""
    root = Path(tempfile.mkdtemp(prefix="ir-ro-", dir="/tmp"))
    root.chmod(0o755)
    yield root
    for dirpath, dirnames, _ in os.walk(root):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)
    root.chmod(0o755)
    shutil.rmtree(root, ignore_errors=True)


def _make_read_only(folder: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(folder, topdown=False):
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o444)
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o555)
    folder.chmod(0o555)


def _as_unprivileged(fn: Callable[[], object]) -> object:
    """Run ``fn`` where permissions bite: as root, in a forked child as nobody."""
    if os.geteuid() != 0:
        return fn()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        os.close(r)
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            msg = pickle.dumps(("ok", fn()))
        except BaseException:
            msg = pickle.dumps(("error", traceback.format_exc()))
        with os.fdopen(w, "wb") as fh:
            fh.write(msg)
        sys.stdout.flush()
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    status, value = pickle.loads(data)
    assert status == "ok", value
    return value


@pytest.mark.parametrize("journal_mode", [None, "wal"])
def test_read_only_directory(shared_tmp: Path, journal_mode: str | None) -> None:
    folder = shared_tmp / "beam time #1"
    path = folder / "bt.db"
    uids = _write(path, journal_mode=journal_mode)
    _exercise(path)  # warm imports in the parent (the child cannot read /root)
    for name in os.listdir(folder):  # a cleanly closed WAL beamtime has no -wal/-shm
        if name.endswith(("-wal", "-shm")):
            os.remove(folder / name)
    _make_read_only(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o555
    before = _snapshot(path)

    def read() -> tuple[int, list]:
        try:
            (folder / "probe").touch()
        except PermissionError:
            pass
        else:
            raise AssertionError("the folder is writable: the test would prove nothing")
        db = Database(path)
        with pytest.raises(BeamtimeFormatError):
            db.query("PRAGMA user_version=5")
        return _exercise(path), records.stream_events(db, uids["live"], "primary").columns["a"]

    n_frames, live_values = _as_unprivileged(read)
    assert n_frames == (4 + 2 + 4) + (1 + 2 + 1)  # rsoxs run, live run
    assert live_values == [1]
    assert _snapshot(path) == before


def test_wal_beamtime_can_be_read(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    uids = _write(path, journal_mode="wal")
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()
    db_bytes = path.read_bytes()
    zarr_before = {k: v for k, v in _snapshot(path).items() if ".zarr" in k}
    _exercise(path)
    assert path.read_bytes() == db_bytes
    assert {k: v for k, v in _snapshot(path).items() if ".zarr" in k} == zarr_before
    # SQLite may add its -wal/-shm companions for a WAL file in a writable folder; nothing else
    assert set(os.listdir(tmp_path)) <= {"bt.db", "bt.zarr", "bt.db-wal", "bt.db-shm"}
    db = Database(path)
    assert records.get_run(db, uids["rsoxs"]).num_events == 4
    db.close()


def test_wal_beamtime_with_live_writer(tmp_path: Path) -> None:
    # a reader of a live WAL beamtime sees commits as they happen
    path = tmp_path / "bt.db"
    w = BeamtimeWriter(path, journal_mode="wal").open()
    uid = w.open_run("scan", time=T0)
    db = Database(path)
    assert records.get_run(db, uid).time_stop is None
    w.open_stream("primary", {}, time=T0)
    w.write_event({"a": 2}, time=T0 + 1)
    w.close_run("success", time=T0 + 2)
    assert records.get_run(db, uid).num_events == 1
    assert records.stream_events(db, uid, "primary").columns == {"a": [2]}
    w.close()
    db.close()
