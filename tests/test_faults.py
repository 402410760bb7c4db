"""Faults: nothing lost or half-written. A full disk or a killed export leaves no complete-looking
file at the target; a .db deleted or replaced under a lazy Dataset is an error, never other frames;
a dask.distributed worker killed mid-compute is retried and the result is the serial one."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from conftest import IMAGE_KEYS, T0, write_nexafs, write_rsoxs

from intake_resonance import Catalog
from intake_resonance.beamtime.errors import BeamtimeReplacedError
from intake_resonance.datasets.open import open_run_dataset
from intake_resonance.tools import cli_output
from intake_resonance.tools.cli import cli
from intake_resonance.tools.writer import BeamtimeWriter


def _write(path: Path, frame_seed: int, n: int = 5) -> tuple[str, np.ndarray]:
    with BeamtimeWriter(path, seed=7) as w:  # same seed: the same uids, as a re-copied beamtime has
        write_nexafs(w, T0)
        uid, _, frames = write_rsoxs(w, T0 + 100, n=n, seed=frame_seed)
    return uid, frames


def _big_run(path: Path, n: int, shape: tuple[int, int]) -> tuple[str, np.ndarray]:
    rng = np.random.default_rng(9)
    frames = rng.integers(0, 2**31 - 1, size=(n, *shape), dtype=np.int32)  # incompressible
    keys = {**IMAGE_KEYS, "detector_image": {**IMAGE_KEYS["detector_image"], "shape": list(shape)}}
    with BeamtimeWriter(path, seed=8) as w:
        uid = w.open_run("rsoxs", sample="PS", time=T0)
        w.open_stream("primary", keys, time=T0)
        for i in range(n):
            ev = w.write_event({"energy_position": 280.0 + i, "exposure": 0.1}, time=T0 + 1 + i)
            w.write_image(ev, "detector_image", frames[i])
        w.close_run("success", time=T0 + n + 2)
    return uid, frames


def _export(*args: str) -> Any:
    return CliRunner().invoke(cli, ["export", *args, "--no-progress"], catch_exceptions=False)


def _left(folder: Path, out: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{out.name}"))


# ------------------------------------------------------------------ export
def test_full_disk_reported_at_fsync_leaves_old_target_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "bt.db"
    uid, frames = _write(db, 1)
    out = tmp_path / "run.nc"
    assert _export(str(db), uid, "-o", str(out)).exit_code == 0
    old = out.read_bytes()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cli_output.os, "fsync", full)
    for target in (out, tmp_path / "new.nc", tmp_path / "new.zarr"):
        result = _export(str(db), uid, "-o", str(target), "--force")
        assert result.exit_code == 2
        assert result.stderr.strip().splitlines() == [f"intake-resonance: error: {target}: cannot write: No space left on device"]
        assert _left(tmp_path, target) == []  # the partial file is removed
    assert out.read_bytes() == old  # --force did not lose the old export
    assert not (tmp_path / "new.nc").exists() and not (tmp_path / "new.zarr").exists()
    monkeypatch.undo()
    assert _export(str(db), uid, "-o", str(tmp_path / "new.zarr")).exit_code == 0
    np.testing.assert_array_equal(xr.open_zarr(tmp_path / "new.zarr").detector_image.values, frames)


def _mount_tmpfs(where: Path, size: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    return done.returncode == 0


def test_export_onto_a_really_full_disk(tmp_path: Path) -> None:
    # The command in its own process, as users run it: after HDF5 failed to write,
    # the HDF5 library crashes at exit unless the command ends as it does.
    db = tmp_path / "bt.db"
    uid, _ = _big_run(db, 12, (128, 128))  # 768 KiB of frames
    small = tmp_path / "small"
    if not _mount_tmpfs(small, "256k"):
        pytest.skip("needs root to mount a small tmpfs (the fsync test above fakes the full disk)")
    exe = Path(sys.executable).with_name("intake-resonance")
    try:
        for name in ("run.nc", "run.zarr"):
            out = small / name
            done = subprocess.run([str(exe), "export", str(db), uid, "-o", str(out), "--no-progress"],
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 2, done.stderr[-2000:]
            assert done.stderr.splitlines() == [f"intake-resonance: error: {out}: cannot write: No space left on device"]
            assert not out.exists() and _left(small, out) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_export_killed_leaves_no_target(tmp_path: Path) -> None:
    db = tmp_path / "bt.db"
    uid, _ = _big_run(db, 100, (256, 256))  # 25 MiB of incompressible frames: takes a moment
    exe = Path(sys.executable).with_name("intake-resonance")
    for name, existing in (("run.nc", False), ("old.nc", True), ("run.zarr", False)):
        out = tmp_path / name
        if existing:
            out.write_bytes(b"the previous export")
        proc = subprocess.Popen([str(exe), "export", str(db), uid, "-o", str(out), "--force", "--no-progress"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        partial = cli_output.partial_path(out).name.replace(str(os.getpid()), str(proc.pid))
        deadline = time.monotonic() + 60
        while not (tmp_path / partial).exists():
            assert proc.poll() is None, "export ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        time.sleep(0.01)  # inside the writing (the partial name exists only while it lasts)
        assert proc.poll() is None, "export ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        if existing:
            assert out.read_bytes() == b"the previous export"
        else:
            assert not out.exists()
        # what is left is hidden and named as unfinished
        assert all(p.endswith(".partial") for p in _left(tmp_path, out))


# ------------------------------------------------------- files changing under us
def _replace(db: Path, frame_seed: int) -> np.ndarray:
    """What rsync does with a new copy: new files beside, renamed over the old names."""
    incoming = db.with_name(".incoming.db")
    _, frames = _write(incoming, frame_seed)
    shutil.rmtree(db.with_suffix(".zarr"))
    os.replace(incoming.with_suffix(".zarr"), db.with_suffix(".zarr"))
    os.replace(incoming, db)
    return frames


@pytest.mark.parametrize("change", ["replaced", "deleted"])
def test_lazy_dataset_refuses_a_changed_db(tmp_path: Path, change: str) -> None:
    db = tmp_path / "bt.db"
    uid, frames = _write(db, 1)
    ds = open_run_dataset(str(db), uid, chunks=1)
    engine = xr.open_dataset(db, engine="resonance", group=uid, chunks={})
    cat = Catalog(db)
    images = cat[uid].images()
    np.testing.assert_array_equal(ds.detector_image[0].values, frames[0])  # read fine before
    if change == "replaced":
        new = _replace(db, 2)
        assert not np.array_equal(new, frames)
        assert open_run_dataset(str(db), uid).attrs["uid"] == uid  # same uid in the new file
    else:
        db.unlink()
    for compute in (lambda: ds.detector_image.values, lambda: engine.detector_image[1:3].values, lambda: images[2]):
        with pytest.raises(BeamtimeReplacedError) as info:
            compute()
        assert str(db) in str(info.value) and f"run {uid}" in str(info.value) and change in str(info.value)
    if change == "replaced":  # opened again, the new file's frames
        np.testing.assert_array_equal(open_run_dataset(str(db), uid).detector_image.values, new)
    cat.close()


def test_lazy_dataset_refuses_a_store_replaced_under_the_same_db(tmp_path: Path) -> None:
    db = tmp_path / "bt.db"
    uid, frames = _write(db, 1)
    ds = open_run_dataset(str(db), uid, chunks=1)
    images = Catalog(db)[uid].images()
    np.testing.assert_array_equal(ds.detector_image[0].values, frames[0])
    # Another beamtime's store, with arrays at the same paths, swapped in; the .db is untouched.
    other = tmp_path / "other" / "bt.db"
    other.parent.mkdir()
    _write(other, 2)
    store = db.with_suffix(".zarr")
    shutil.rmtree(store)
    os.replace(other.with_suffix(".zarr"), store)
    for compute in (lambda: ds.detector_image.values, lambda: images[1]):
        with pytest.raises(BeamtimeReplacedError) as info:
            compute()
        assert str(store) in str(info.value) and f"run {uid}" in str(info.value) and "replaced" in str(info.value)


def test_replaced_during_compute(tmp_path: Path) -> None:
    import dask

    db = tmp_path / "bt.db"
    uid, frames = _write(db, 1)
    ds = open_run_dataset(str(db), uid, chunks=1)
    seen: list[int] = []

    def replace_after_first(block: np.ndarray) -> np.ndarray:
        seen.append(1)
        if len(seen) == 1:
            _replace(db, 2)
        return block

    lazy = ds.detector_image.data.map_blocks(replace_after_first, dtype=ds.detector_image.dtype)
    with dask.config.set(scheduler="sync"), pytest.raises(BeamtimeReplacedError):
        lazy.compute()


# ---------------------------------------------------------------- distributed
def _slow(block: np.ndarray) -> np.ndarray:
    time.sleep(0.15)
    return block


def test_worker_killed_mid_compute_is_retried(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    db = tmp_path / "bt.db"
    uid, frames = _write(db, 3, n=16)
    ds = open_run_dataset(str(db), uid, chunks=1)
    lazy = ds.detector_image.data.map_blocks(_slow, dtype=ds.detector_image.dtype).sum(axis=(1, 2))
    serial = lazy.compute(scheduler="sync")
    np.testing.assert_array_equal(serial, frames.sum(axis=(1, 2)))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        pids = client.run(os.getpid)
        future = client.compute(lazy)
        deadline = time.monotonic() + 60
        busy: list[str] = []
        while not busy:
            busy = [w for w, keys in client.processing().items() if keys]
            assert time.monotonic() < deadline and not future.done()
            time.sleep(0.01)
        time.sleep(0.2)  # a task under way on that worker
        os.kill(pids[busy[0]], signal.SIGKILL)
        result = future.result(timeout=120)
        assert pids[busy[0]] not in client.run(os.getpid).values()  # the worker did die (and was replaced)
    np.testing.assert_array_equal(result, serial)
