"""Reliability through every face: the beamline facade, intake and the xarray engine.

Each broken beamtime must give a BeamtimeError (never a raw sqlite3, zarr,
pandas or KeyError traceback, never a wrong number) whose message names the
file and the run / stream / seq_num / field; reading must never change a
byte; a live beamtime written by another process must read consistently; and
frames must compute on dask.distributed workers in other processes.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import pickle
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import intake
import numpy as np
import pytest
import xarray as xr
import zarr
from conftest import IMAGE_KEYS, T0, Written, write_nexafs, write_rsoxs

from intake_resonance.beamtime import records
from intake_resonance.beamtime.errors import (
    BadJSONError,
    BeamtimeError,
    BeamtimeFormatError,
    BeamtimeNotFoundError,
    FrameIndexError,
    FrameMismatchError,
    FramesMissingError,
    StoreEscapeError,
)
from intake_resonance.beamtime.format import Database
from intake_resonance.beamtime.frames import FrameStack
from intake_resonance.faces.facade import Catalog
from intake_resonance.faces.intake_drivers import BeamtimeCatalog
from intake_resonance.tools.check import check
from intake_resonance.tools.writer import BeamtimeWriter


# ------------------------------------------------------------------------ the faces
def _facade(path: Path, uid: str, stream: str = "primary") -> tuple[Any, list[np.ndarray]]:
    """Everything the beamline's reader offers for one run."""
    with Catalog(path) as cat:
        cat.recent()
        run = cat[uid]
        run.sample
        table = run.table(stream)
        images = run.images()
        return table, [images[i] for i in range(len(images))]


def _intake(path: Path, uid: str, stream: str = "primary") -> xr.Dataset:
    cat = intake.open_resonance_beamtime(str(path), stream=stream)
    list(cat)
    cat.to_dataframe()
    return cat[uid].read()


def _engine(path: Path, uid: str, stream: str = "primary") -> xr.Dataset:
    return xr.open_dataset(path, engine="resonance", group=f"{uid}/{stream}").load()


FACES: dict[str, Callable[..., Any]] = {"facade": _facade, "intake": _intake, "xarray": _engine}


def _raises(face: str, path: Path, uid: str, stream: str = "primary") -> BeamtimeError:
    """Run a face that must fail; return its error after checking it is ours."""
    with pytest.raises(Exception) as info:
        FACES[face](path, uid, stream)
    err = info.value
    # our family only: a raw sqlite3/zarr/pandas/KeyError must not get through
    assert isinstance(err, BeamtimeError), f"{face}: {type(err).__module__}.{type(err).__name__}: {err}"
    return err


def _words(err: BaseException, *words: object) -> None:
    msg = str(err)
    missing = [w for w in words if str(w) not in msg]
    assert not missing, f"{missing} not in {msg!r}"


def _sql(path: Path, sql: str, params: tuple = ()) -> None:
    conn = sqlite3.connect(path)
    conn.execute(sql, params)
    conn.commit()
    conn.close()


@pytest.fixture
def bt(beamtime: Written) -> Written:
    return beamtime


# --------------------------------------------------------------- not a beamtime
def _open_face(face: str, path: Path) -> None:
    if face == "facade":
        Catalog(path)
    elif face == "intake":
        intake.open_resonance_beamtime(str(path))
    elif face == "intake-class":
        list(BeamtimeCatalog(str(path)))
    else:
        xr.open_dataset(path, engine="resonance", group="0123456789ab")


OPEN_FACES = ["facade", "intake", "intake-class", "xarray"]


@pytest.mark.parametrize("face", OPEN_FACES)
def test_path_does_not_exist(tmp_path: Path, face: str) -> None:
    path = tmp_path / "sub" / "bt.db"
    for target in (path, tmp_path / "bt.db"):
        with pytest.raises(BeamtimeNotFoundError) as info:
            _open_face(face, target)
        assert isinstance(info.value, FileNotFoundError)
        _words(info.value, target, "does not exist")
    assert os.listdir(tmp_path) == []  # no .db, no .zarr, no journal


@pytest.mark.parametrize("face", OPEN_FACES)
def test_not_sqlite(tmp_path: Path, face: str) -> None:
    path = tmp_path / "bt.db"
    path.write_bytes(b"PK\x03\x04 a zip, not a beamtime" * 10)
    with pytest.raises(BeamtimeFormatError) as info:
        _open_face(face, path)
    _words(info.value, path, "not a SQLite database")
    assert sorted(os.listdir(tmp_path)) == ["bt.db"]


@pytest.mark.parametrize("face", OPEN_FACES)
def test_sqlite_without_beamtime_tables(tmp_path: Path, face: str) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        w.connection.execute("PRAGMA foreign_keys = OFF")
        w.connection.execute("DROP TABLE image_refs")
        w.connection.commit()
    with pytest.raises(BeamtimeFormatError) as info:
        _open_face(face, path)
    _words(info.value, path, "table 'image_refs' is missing")


@pytest.mark.parametrize("face", OPEN_FACES)
def test_schema_version_newer(bt: Written, face: str) -> None:
    _sql(bt.path, "PRAGMA user_version = 7")
    with pytest.raises(BeamtimeFormatError) as info:
        _open_face(face, bt.path)
    _words(info.value, bt.path, "schema version 7", "(2)", "newer")


# ----------------------------------------------------------------- broken data
@pytest.mark.parametrize("face", FACES)
def test_zarr_store_missing(bt: Written, face: str) -> None:
    store = bt.path.with_suffix(".zarr")
    shutil.rmtree(store)
    nexafs, rsoxs = bt.uids["nexafs"], bt.uids["rsoxs"]
    # listing and scalar-only runs work on every face
    with Catalog(bt.path) as cat:
        assert [r.uid for r in cat.recent()] == [rsoxs, nexafs]
        assert cat[rsoxs].table()["energy_position"].tolist() == [e["energy_position"] for e in bt.events["rsoxs"]]
        assert len(cat[rsoxs].images()) == 5  # counting reads no frame
    cat = intake.open_resonance_beamtime(str(bt.path))
    assert list(cat) == [nexafs, rsoxs] and cat.to_dataframe()["num_events"].tolist() == [9, 5]
    table, frames = _facade(bt.path, nexafs)
    assert frames == [] and table["i0"].tolist() == [e["i0"] for e in bt.events["nexafs"]]
    assert _intake(bt.path, nexafs)["i0"].values.tolist() == [e["i0"] for e in bt.events["nexafs"]]
    assert _engine(bt.path, nexafs)["i0"].values.tolist() == [e["i0"] for e in bt.events["nexafs"]]
    # a run with frames: scalars still load; only the frames fail, naming the store
    ds = xr.open_dataset(bt.path, engine="resonance", group=rsoxs)
    assert ds.drop_vars("detector_image").load().exposure.values.tolist() == [0.1] * 5
    err = _raises(face, bt.path, rsoxs)
    assert isinstance(err, FramesMissingError)
    _words(err, store, "does not exist", f"run {rsoxs}", "seq_num 1", "field detector_image")
    assert not store.exists()


@pytest.mark.parametrize("face", FACES)
def test_zarr_group_outside_store_refused_before_any_read(
    bt: Written, face: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rsoxs = bt.uids["rsoxs"]
    # a complete, readable copy of the frames just outside the store
    outside = zarr.open_array(str(tmp_path / "outside"), mode="w", shape=(5, 6, 5), chunks=(1, 6, 5), dtype="int32")
    outside[:] = bt.frames["rsoxs"]
    _sql(bt.path, "UPDATE image_refs SET zarr_group = '../outside'")
    opened: list[Any] = []
    real = zarr.open_array
    monkeypatch.setattr(zarr, "open_array", lambda *a, **k: opened.append((a, k)) or real(*a, **k))
    err = _raises(face, bt.path, rsoxs)
    assert isinstance(err, StoreEscapeError)
    _words(err, "'../outside'", "outside the Zarr store", bt.path.with_suffix(".zarr"), f"run {rsoxs}", "seq_num 1")
    assert opened == []  # refused before zarr was asked to open anything


@pytest.mark.parametrize("face", FACES)
def test_bad_json_in_an_event(bt: Written, face: str) -> None:
    nexafs = bt.uids["nexafs"]
    _sql(
        bt.path,
        "UPDATE events SET data = '{\"i0\": 1.0,' WHERE seq_num = 4 "
        "AND stream_uid IN (SELECT uid FROM streams WHERE run_uid = ?)",
        (nexafs,),
    )
    err = _raises(face, bt.path, nexafs)
    assert isinstance(err, BadJSONError) and err.seq_num == 4
    _words(err, bt.path, f"run {nexafs}", "stream primary", "seq_num 4", "event data")
    # the other run is untouched: bad JSON is only that run's problem
    assert len(FACES[face](bt.path, bt.uids["rsoxs"])) > 0


@pytest.mark.parametrize("face", FACES)
def test_index_in_stack_beyond_array(bt: Written, face: str) -> None:
    rsoxs = bt.uids["rsoxs"]
    _sql(bt.path, "UPDATE image_refs SET index_in_stack = 41 WHERE index_in_stack = 2")
    err = _raises(face, bt.path, rsoxs)
    assert isinstance(err, FrameIndexError) and err.seq_num == 3
    _words(err, bt.path.with_suffix(".zarr"), "index_in_stack 41", "5 frames", f"run {rsoxs}", "seq_num 3", "field detector_image")


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("UPDATE image_refs SET shape_y = 9", ["(5, 6, 5)", "(6, 9)"]),
        ("UPDATE image_refs SET dtype = 'float32'", ["int32", "float32"]),
    ],
    ids=["shape", "dtype"],
)
def test_frame_shape_or_dtype_disagree_with_refs(bt: Written, face: str, sql: str, words: list[str]) -> None:
    rsoxs = bt.uids["rsoxs"]
    _sql(bt.path, sql)
    err = _raises(face, bt.path, rsoxs)
    assert isinstance(err, FrameMismatchError)
    _words(err, *words, bt.path.with_suffix(".zarr"), f"run {rsoxs}", "field detector_image")


@pytest.mark.parametrize("face", ["intake", "xarray"])
@pytest.mark.parametrize("text", ['{"i0": {"units"', "[1, 2]"])
def test_data_keys_not_json(bt: Written, face: str, text: str) -> None:
    nexafs = bt.uids["nexafs"]
    _sql(bt.path, "UPDATE streams SET data_keys = ? WHERE name = 'primary' AND run_uid = ?", (text, nexafs))
    err = _raises(face, bt.path, nexafs)
    assert isinstance(err, BadJSONError)
    _words(err, bt.path, f"run {nexafs}", "stream primary", "data_keys")


def test_data_keys_not_json_facade_reads_values(bt: Written) -> None:
    # the beamline's reader never reads descriptors: its values stay right, check() reports the row
    nexafs = bt.uids["nexafs"]
    _sql(bt.path, "UPDATE streams SET data_keys = '{' WHERE run_uid = ?", (nexafs,))
    table, _ = _facade(bt.path, nexafs)
    assert table["i0"].tolist() == [e["i0"] for e in bt.events["nexafs"]]
    assert {(f.run, f.stream) for f in check(bt.path)} == {(nexafs, "primary"), (nexafs, "baseline")}


def test_check_agrees_with_the_faces(bt: Written) -> None:
    # every error a face raises on this file is among check()'s findings
    _sql(bt.path, "UPDATE events SET data = '{' WHERE seq_num = 4 AND data LIKE '%i0%'")  # the nexafs run
    _sql(bt.path, "UPDATE image_refs SET index_in_stack = 41 WHERE index_in_stack = 2")
    found = {(f.run, f.seq_num) for f in check(bt.path) if f.level == "error"}
    for key in ("nexafs", "rsoxs"):
        err = _raises("xarray", bt.path, bt.uids[key])
        assert (err.run, err.seq_num) in found


# ------------------------------------------------------------------- read-only
def _snapshot(db_path: Path) -> dict[str, str]:
    """Hashes of the .db, its journal neighbours and the whole .zarr tree, and the folder listing."""
    out = {"listing": "\n".join(sorted(os.listdir(db_path.parent)))}
    for suffix in ("", "-wal", "-journal", "-shm"):
        p = db_path.with_name(db_path.name + suffix)
        out[p.name] = hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else "absent"
    for dirpath, dirnames, filenames in sorted(os.walk(db_path.with_suffix(".zarr"))):
        out[dirpath] = ",".join(sorted(dirnames))
        for f in filenames:
            out[os.path.join(dirpath, f)] = hashlib.sha256(Path(dirpath, f).read_bytes()).hexdigest()
    return out


def _write_mixed(path: Path, journal_mode: str | None = None) -> dict[str, str]:
    """Two closed runs and a live one with committed frames, as a beamtime in progress."""
    with BeamtimeWriter(path, seed=11, journal_mode=journal_mode) as w:
        nexafs, _ = write_nexafs(w, T0)
        rsoxs, _, _ = write_rsoxs(w, T0 + 100, n=4)
        live = w.open_run("rsoxs", sample="PS", time=T0 + 200)
        w.open_stream("primary", IMAGE_KEYS, time=T0 + 200)
        ev = w.write_event({"energy_position": 1.0, "exposure": 0.1}, time=T0 + 201)
        w.write_image(ev, "detector_image", np.ones((6, 5), np.int32))
        w.open_stream("baseline", {}, time=T0 + 202)  # commits the primary event
        w.close()
    return {"nexafs": nexafs, "rsoxs": rsoxs, "live": live}


def _exercise_faces(path: Path, scheduler: str | None = None) -> int:
    """Every face over every run and stream; returns the number of frames read."""
    import dask

    n = 0
    with dask.config.set(scheduler=scheduler) if scheduler else dask.config.set({}):
        with Catalog(path) as cat:
            summaries = cat.recent(-1)
            cat.by_sample("PS")
            for s in summaries:
                run = cat[s.uid]
                run.sample
                run.table()
                run.table("baseline")
                images = run.images()
                n += len(images[:]) if len(images) else 0
        bt = intake.open_resonance_beamtime(str(path))
        bt.reload()
        bt.to_dataframe()
        bt.search(plan_name="rsoxs").to_dataframe()
        for uid in bt:
            src = bt[uid]
            src.discover()
            ds = src.read()
            n += ds.sizes["time"] if "detector_image" in ds else 0
            src.to_datatree().load()
        folder = intake.open_resonance_beamtimes(str(path.parent))
        list(folder[path.stem])
        for uid in bt:
            ds = xr.open_dataset(path, engine="resonance", group=uid).load()
            n += ds.sizes["time"] if "detector_image" in ds else 0
        xr.open_datatree(path, engine="resonance").load()
        findings = check(path)
        assert all(f.level == "warning" for f in findings), [str(f) for f in findings]
    return n


def test_faces_change_and_create_nothing(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    _write_mixed(path)
    before = _snapshot(path)
    assert before["bt.db-journal"] == "absent"
    assert _exercise_faces(path) == 3 * (4 + 1)  # facade, intake, engine: rsoxs + live frames
    assert _snapshot(path) == before


@pytest.mark.parametrize("journal_mode", [None, "wal"])
def test_faces_in_a_read_only_directory(journal_mode: str | None) -> None:
    import tempfile

    from test_readonly import _as_unprivileged, _make_read_only  # the fork-as-nobody helper (root in CI)

    root = Path(tempfile.mkdtemp(prefix="ir-rel-", dir="/tmp"))
    root.chmod(0o755)
    folder = root / "ro beamtime"
    path = folder / "bt.db"
    try:
        _write_mixed(path, journal_mode=journal_mode)
        _exercise_faces(path)  # warm imports and entry points: the child may not read the venv's caches
        for name in os.listdir(folder):
            if name.endswith(("-wal", "-shm")):  # a cleanly closed WAL beamtime has none
                os.remove(folder / name)
        _make_read_only(folder)
        before = _snapshot(path)

        def read() -> int:
            with pytest.raises(PermissionError):
                (folder / "probe").touch()
            return _exercise_faces(path, scheduler="synchronous")  # no thread pools after fork

        assert _as_unprivileged(read) == 3 * (4 + 1)
        assert _snapshot(path) == before
    finally:
        for dirpath, dirnames, _ in os.walk(root):
            for d in dirnames:
                os.chmod(os.path.join(dirpath, d), 0o755)
        shutil.rmtree(root, ignore_errors=True)


# ----------------------------------------------------------------- live beamtimes
def _read_live(path: Path, seen: dict[str, int]) -> None:
    """One round of what a user does on a live beamtime, with its consistency checks."""
    cat = _read_live.cat
    cat.reload()
    df = cat.to_dataframe()
    if df.empty:
        return
    listed = list(cat)
    # every call sees the newest commit: the listing, read after the table, may have runs committed in between
    assert listed[: len(df)] == df["uid"].tolist()
    assert (df["num_events"] >= df["stream_events"]).all()  # committed events of all streams, open runs' too
    newest = df["uid"].iloc[-1]
    ds = cat[newest].read()
    n = ds.sizes["time"]
    assert ds["seq_num"].values.tolist() == list(range(1, n + 1))
    if n:
        # each event's frame, and no other: the frame holds its seq_num
        np.testing.assert_array_equal(ds["detector_image"].values[:, 0, 0], np.arange(1, n + 1))
    seen[newest] = max(seen.get(newest, 0), n)
    with Catalog(path) as fac:
        run = fac[newest]
        assert run.time_stop is not None or run.num_events == 0
        images = run.images()
        if len(images):
            assert int(images[-1][0, 0]) == len(images)
        assert len(images) <= len(run.table()) or run.time_stop is None


@pytest.mark.parametrize("journal_mode", [None, "wal"])
def test_live_beamtime_written_by_another_process(tmp_path: Path, journal_mode: str | None) -> None:
    from live_writer import write_live

    path = tmp_path / "live.db"
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=write_live, args=(str(path), journal_mode, 2.5, queue))
    proc.start()
    try:
        assert queue.get(timeout=60) == "started"
        while not path.exists():
            time.sleep(0.01)
        _read_live.cat = intake.open_resonance_beamtime(str(path))
        seen: dict[str, int] = {}
        rounds = 0
        while proc.is_alive():
            _read_live(path, seen)
            rounds += 1
        report = queue.get(timeout=30)
        proc.join(timeout=30)
    finally:
        if proc.is_alive():
            proc.terminate()
    assert proc.exitcode == 0
    written = report["written"]
    assert rounds > 5 and len(written) > 3
    # the writer never waited long for us (its SQLite timeout is 30 s)
    assert report["longest_commit"] < 2.0, report["longest_commit"]
    # a run's committed events never exceed what was written
    assert set(seen) <= set(written)
    assert all(seen[uid] <= written[uid]["primary"] for uid in seen)
    # after the writer is done, everything it wrote reads back exactly
    _read_live.cat.reload()
    df = _read_live.cat.to_dataframe()
    assert df["uid"].tolist() == list(written)
    assert df["num_events"].tolist() == [w["primary"] + w["baseline"] for w in written.values()]
    assert check(path) == []


@pytest.fixture
def live_wal_run(tmp_path: Path) -> Any:
    """A WAL beamtime with one open run whose primary stream the test writes into."""
    path = tmp_path / "bt.db"
    w = BeamtimeWriter(path, journal_mode="wal").open()
    uid = w.open_run("rsoxs", time=T0)
    w.open_stream("primary", IMAGE_KEYS, time=T0)
    yield path, w, uid
    w.close()


def test_dataset_rereads_when_a_commit_lands_mid_read(live_wal_run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression: a commit landing between reading a stream's events and its frame
    # references gave an xarray "conflicting sizes" ValueError on live beamtimes.
    path, w, uid = live_wal_run
    real = records.frame_refs

    calls = []

    def commit_then_read(*args: Any, **kwargs: Any) -> Any:
        if not calls:  # the writer commits once, right between the two queries
            for i in range(2):
                ev = w.write_event({"energy_position": float(i)}, time=T0 + i)
                w.write_image(ev, "detector_image", np.full((6, 5), i, np.int32))
            w.close_run(time=T0 + 3)  # commits events and references now
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(records, "frame_refs", commit_then_read)
    ds = xr.open_dataset(path, engine="resonance", group=uid)
    # the mismatch is noticed and the read repeated: the state after the commit, whole
    assert len(calls) == 2 and ds.sizes["time"] == 2 and ds.detector_image.shape == (2, 6, 5)
    np.testing.assert_array_equal(ds.detector_image.values[:, 0, 0], [0, 1])
    monkeypatch.setattr(records, "frame_refs", real)
    assert xr.open_dataset(path, engine="resonance", group=uid).detector_image.shape == (2, 6, 5)


def test_dataset_settles_in_one_transaction_when_the_writer_keeps_committing(
    live_wal_run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, w, uid = live_wal_run
    real = records.frame_refs
    calls = []

    def commit_every_time(*args: Any, **kwargs: Any) -> Any:
        k = len(calls)
        ev = w.write_event({"energy_position": float(k)}, time=T0 + k)
        w.write_image(ev, "detector_image", np.full((6, 5), k, np.int32))
        w.connection.commit()
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(records, "frame_refs", commit_every_time)
    ds = xr.open_dataset(path, engine="resonance", group=uid)
    # three optimistic reads each see a commit land; the fourth reads inside one
    # transaction and sees the three events committed before it began
    assert len(calls) == 4 and ds.sizes["time"] == 3
    np.testing.assert_array_equal(ds.detector_image.values[:, 0, 0], [0, 1, 2])


# -------------------------------------------------------------------------- faults
@pytest.fixture
def faulty(tmp_path: Path) -> dict[str, Any]:
    """One beamtime with the faults of the field, each in its own run."""
    path = tmp_path / "bt.db"
    out: dict[str, Any] = {"path": path}
    with BeamtimeWriter(path, seed=21) as w:
        out["short"], _, out["frames"] = write_rsoxs(w, T0, n=5, sample="PS")
        out["nosample"], _ = write_nexafs(w, T0 + 100, n=3, sample="gone")
        out["empty"] = w.open_run("rsoxs", sample="PS", time=T0 + 200)
        w.open_stream("primary", IMAGE_KEYS, time=T0 + 200)
        w.close_run("aborted", time=T0 + 201)
        out["crashed"] = w.open_run("rsoxs", sample="PS", time=T0 + 300)
        w.open_stream("primary", IMAGE_KEYS, time=T0 + 300)
        ev = w.write_event({"energy_position": 1.0, "exposure": 0.1}, time=T0 + 301)
        w.write_image(ev, "detector_image", np.ones((6, 5), np.int32))
        w.open_stream("baseline", {}, time=T0 + 302)  # commits the first event and its frame
        for i in range(3):  # frames stored, rows never committed: the writer crashed
            ev = w.write_event({"energy_position": 2.0 + i}, time=T0 + 303 + i)
        w._stream = w.connection.execute("SELECT uid FROM streams WHERE name = 'primary' AND run_uid = ?", (out["crashed"],)).fetchone()[0]
        for i in range(3):
            w.write_image(w.write_event({}, time=T0 + 310 + i), "detector_image", np.full((6, 5), 7, np.int32))
        w.connection.rollback()
        w.close()
    conn = sqlite3.connect(path)  # foreign keys off, as the beamline's own tools leave them
    conn.execute("DELETE FROM samples WHERE name = 'gone'")
    conn.commit()
    conn.close()
    # the short run's array lost its last two frames
    zarr.open_array(str(path.with_suffix(".zarr")), path=f"runs/{out['short']}/detector_image", mode="r+").resize(
        (3, 6, 5)
    )
    return out


def test_faults_are_reported_by_check(faulty: dict[str, Any]) -> None:
    findings = check(faulty["path"])
    got = {(f.level, f.run, f.seq_num, f.message.split(" ")[0]) for f in findings}
    assert ("error", faulty["short"], 4, "index_in_stack") in got and ("error", faulty["short"], 5, "index_in_stack") in got
    assert any(f.run == faulty["nosample"] and "no longer exists" in f.message for f in findings)
    assert any(f.run == faulty["crashed"] and "never closed" in f.message for f in findings)
    orphans = [f for f in findings if "not part of any run" in f.message]
    assert len(orphans) == 1 and orphans[0].run == faulty["crashed"] and "3 of 4 frame(s)" in orphans[0].message
    assert not [f for f in findings if f.run == faulty["empty"]]  # a stream without events is no fault
    assert len(findings) == 5


def test_short_array_fails_only_for_its_frames(faulty: dict[str, Any]) -> None:
    path, uid, frames = faulty["path"], faulty["short"], faulty["frames"]
    with Catalog(path) as cat:
        images = cat[uid].images()
        assert len(images) == 5 and images.shape == (5, 6, 5)
        for i in range(3):
            np.testing.assert_array_equal(images[i], frames[i])
        np.testing.assert_array_equal(images[0:3], frames[:3])
        for i, seq in ((3, 4), (-1, 5)):
            with pytest.raises(FrameIndexError) as info:
                images[i]
            _words(info.value, f"seq_num {seq}", "3 frames", f"run {uid}", path.with_suffix(".zarr"))
        assert len(cat[uid].table()) == 5  # the scalars are all there
    ds = xr.open_dataset(path, engine="resonance", group=uid)
    np.testing.assert_array_equal(ds.detector_image.isel(time=[0, 2]).values, frames[[0, 2]])
    with pytest.raises(FrameIndexError, match="seq_num 4"):
        ds.detector_image.isel(time=3).values
    # with dask, a chunk is read whole: chunks of one frame keep the good frames readable
    ds = intake.open_resonance_beamtime(str(path), chunks=1)[uid].to_dask()
    np.testing.assert_array_equal(ds.detector_image.isel(time=slice(0, 3)).values, frames[:3])
    with pytest.raises(FrameIndexError, match="seq_num 5"):
        ds.detector_image.isel(time=4).values
    ds = intake.open_resonance_beamtime(str(path))[uid].to_dask()
    with pytest.raises(FrameIndexError, match="seq_num 4"):
        ds.detector_image.values  # one default chunk holds them all: a clear error, not a wrong number


@pytest.mark.parametrize("face", FACES)
def test_uncommitted_frames_are_ignored_by_reads(faulty: dict[str, Any], face: str) -> None:
    out = FACES[face](faulty["path"], faulty["crashed"])
    frames = out[1] if face == "facade" else list(out["detector_image"].values)
    assert len(frames) == 1 and (frames[0] == 1).all()  # only the committed frame, not the three 7s


def test_run_never_closed_through_faces(faulty: dict[str, Any]) -> None:
    path, uid = faulty["path"], faulty["crashed"]
    with Catalog(path) as cat:
        run = cat[uid]
        assert (run.time_stop, run.exit_status, run.num_events) == (None, None, 0)
        assert cat.recent(1)[0].uid == uid and cat.recent(1)[0].time_stop is None
        assert run.table()["seq_num"].tolist() == [1]
        assert run.table("baseline").columns.tolist() == ["seq_num", "time"]  # its events never committed
    bt = intake.open_resonance_beamtime(str(path))
    row = bt.to_dataframe().set_index("uid").loc[uid]
    # the runs column stays 0 (the facade keeps it); tables and attrs count the committed event
    assert pd_isna(row["time_stop"]) and pd_isna(row["exit_status"]) and row["num_events"] == 1
    ds = xr.open_dataset(path, engine="resonance", group=uid)
    assert ds.attrs["num_events"] == 1 and "time_stop" not in ds.attrs and ds.sizes["time"] == 1
    assert xr.open_dataset(path, engine="resonance", group=f"{uid}/not_yet").sizes["time"] == 0


def pd_isna(value: Any) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def test_sample_row_deleted_through_faces(faulty: dict[str, Any]) -> None:
    path, uid = faulty["path"], faulty["nosample"]
    with Catalog(path) as cat:
        assert cat[uid].sample is None
        assert [s.sample_name for s in cat.recent() if s.uid == uid] == [None]
        assert cat.by_sample("gone") == []
    assert pd_isna(intake.open_resonance_beamtime(str(path)).to_dataframe().set_index("uid").loc[uid, "sample"])
    ds = xr.open_dataset(path, engine="resonance", group=uid).load()
    assert "sample_name" not in ds.attrs and ds.sizes["time"] == 3


def test_stream_without_events_through_faces(faulty: dict[str, Any]) -> None:
    path, uid = faulty["path"], faulty["empty"]
    table, frames = _facade(path, uid)
    assert table.columns.tolist() == ["seq_num", "time"] and len(table) == 0 and frames == []
    with Catalog(path) as cat:
        assert cat[uid].images().shape == (0, 0, 0)
    for ds in (_intake(path, uid), _engine(path, uid)):
        assert ds.sizes["time"] == 0 and ds.attrs["exit_status"] == "aborted"
        assert ds.detector_image.shape == (0, 6, 5)  # declared in data_keys


# ---------------------------------------------------------------- dask.distributed
@pytest.fixture
def client(process_client):
    """The session's process cluster (see conftest)."""
    return process_client


def _frames_on_worker(store: str, refs_bytes: bytes, db_path: str) -> tuple[int, np.ndarray]:
    """Runs on a worker: rebuild the stack from pickled plain data and read it there."""
    refs = pickle.loads(refs_bytes)
    stack = FrameStack(store, refs, db_path, field="detector_image")
    return os.getpid(), stack[::-1]


def test_distributed_workers_compute_frames(bt: Written, client) -> None:
    uid, frames = bt.uids["rsoxs"], bt.frames["rsoxs"]
    ds = intake.open_resonance_beamtime(str(bt.path), chunks=2)[uid].to_dask()
    data = ds.detector_image.data
    # the graph holds only plain, picklable data: no connection, no open file
    graph = dict(data.__dask_graph__())
    assert len(cloudpickle.dumps(graph)) < 100_000
    assert cloudpickle.loads(cloudpickle.dumps(graph)).keys() == graph.keys()
    mean = client.compute(ds.detector_image.mean("time")).result()
    np.testing.assert_allclose(mean.values, frames.mean(0))
    pids = set(client.run(os.getpid).values())
    assert os.getpid() not in pids and len(pids) == 2
    # a worker opens the store itself from pickled references
    db = Database(bt.path)
    refs = records.frame_refs(db, uid, "detector_image", "primary")
    pid, got = client.submit(_frames_on_worker, str(db.zarr_path), pickle.dumps(refs), str(db.path)).result()
    assert pid in pids
    np.testing.assert_array_equal(got, frames[::-1])


def test_distributed_errors_arrive_whole(bt: Written, client) -> None:
    uid = bt.uids["rsoxs"]
    _sql(bt.path, "UPDATE image_refs SET index_in_stack = 41 WHERE index_in_stack = 4")
    ds = intake.open_resonance_beamtime(str(bt.path), chunks=1)[uid].to_dask()
    with pytest.raises(FrameIndexError) as info:
        client.compute(ds.detector_image.sum()).result()
    _words(info.value, "index_in_stack 41", "seq_num 5", f"run {uid}")
    assert info.value.seq_num == 5
    # the other chunks compute fine on the workers
    total = client.compute(ds.detector_image.isel(time=slice(0, 4)).sum()).result()
    assert int(total) == int(bt.frames["rsoxs"][:4].sum())
