"""One builder for every face: same variables, attrs, chunks and dask names; owned resources; light imports."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import weakref
from pathlib import Path

import dask.array as da
import intake
import numpy as np
import pytest
import xarray as xr
from conftest import IMAGE_KEYS, T0, Written

from intake_resonance.beamtime.format import Database
from intake_resonance.datasets.open import open_run_dataset, open_run_tree
from intake_resonance.faces.intake_drivers import BeamtimeCatalog, RunSource
from intake_resonance.faces.xarray_backend import ResonanceBackendEntrypoint
from intake_resonance.tools.writer import BeamtimeWriter


def _frame_names(ds: xr.Dataset) -> dict[str, str]:
    return {k: v.data.name for k, v in ds.data_vars.items() if isinstance(v.data, da.Array)}


def _same(a: xr.Dataset, b: xr.Dataset) -> None:
    xr.testing.assert_identical(a, b)
    assert a.chunks == b.chunks
    assert _frame_names(a) == _frame_names(b)
    assert _frame_names(a)  # there are frames to compare


def test_every_face_builds_the_same_graph(beamtime: Written) -> None:
    uid, path = beamtime.uids["rsoxs"], beamtime.path
    ref = open_run_dataset(path, uid)
    with Database(path) as db:
        _same(ref, open_run_dataset(db, uid[:8]))
    _same(ref, RunSource(str(path), uid).to_dask())
    cat = BeamtimeCatalog(str(path))
    _same(ref, cat[uid].to_dask())
    _same(ref, intake.open_resonance_beamtime(str(path))[-1].to_dask())
    _same(ref, open_run_tree(path, uid)["primary"].to_dataset())
    _same(ref, RunSource(str(path), uid).to_datatree()["primary"].to_dataset())
    # stacking builds each run through the same builder: its graph holds the run's frame layer
    stacked = cat.stack([uid])
    assert ref.detector_image.data.name in stacked.detector_image.data.dask.layers
    cat.close()
    # the engine itself gives the same variables, attrs and chunks (xarray names a plain path's
    # arrays by path and modification time, see dataset.py)
    direct = xr.open_dataset(path, engine="resonance", group=uid, chunks={})
    xr.testing.assert_identical(ref, direct)
    assert ref.chunks == direct.chunks
    np.testing.assert_array_equal(ref.detector_image.values, beamtime.frames["rsoxs"])


def test_chunk_choices_agree_between_faces(beamtime: Written) -> None:
    uid, path = beamtime.uids["rsoxs"], beamtime.path
    for chunks, want in ((2, (2, 2, 1)), ((3, -1, 2), (3, 2)), ({"time": 4}, (4, 1)), ("auto", (5,))):
        a = open_run_dataset(path, uid, chunks=chunks)
        b = RunSource(str(path), uid, chunks=chunks).to_dask()
        _same(a, b)
        assert a.detector_image.data.chunks[0] == want
    assert open_run_dataset(path, uid, chunks=(3, -1, 2)).detector_image.data.chunks[2] == (2, 2, 1)
    with pytest.raises(ValueError, match="frame chunks"):
        open_run_dataset(path, uid, chunks="lots")


def _live_run(path: Path) -> tuple[BeamtimeWriter, str]:
    w = BeamtimeWriter(path, journal_mode="wal")
    w.open()
    uid = w.open_run("rsoxs", sample="PS", time=T0)
    w.open_stream("primary", IMAGE_KEYS, time=T0)
    return w, uid


def test_dask_names_follow_live_appends_not_the_mtime(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    w, uid = _live_run(path)
    try:
        frames = np.arange(4 * 30, dtype=np.int32).reshape(4, 6, 5)
        for i in range(2):
            ev = w.write_event({"energy_position": 280.0 + i, "exposure": 0.1}, time=T0 + 1 + i)
            w.write_image(ev, "detector_image", frames[i])
        w.connection.commit()
        stamp = os.stat(path).st_mtime_ns
        before = open_run_dataset(path, uid)
        again = open_run_dataset(path, uid)
        assert _frame_names(before) == _frame_names(again)
        ev = w.write_event({"energy_position": 282.0, "exposure": 0.1}, time=T0 + 3)
        w.write_image(ev, "detector_image", frames[2])
        w.connection.commit()
        os.utime(path, ns=(stamp, stamp))  # the same mtime: names must still change
        after = open_run_dataset(path, uid)
        assert after.sizes["time"] == 3
        assert _frame_names(after)["detector_image"] != _frame_names(before)["detector_image"]
        np.testing.assert_array_equal(after.detector_image.values, frames[:3])
    finally:
        w.close()


def test_run_source_keeps_no_dataset_alive_and_read_stays_separate(beamtime: Written) -> None:
    cat = BeamtimeCatalog(str(beamtime.path))
    src = cat[beamtime.uids["rsoxs"]]
    lazy = src.to_dask()
    assert src.to_dask() is lazy  # held by the user: the same object
    loaded = src.read()
    assert isinstance(lazy.detector_image.data, da.Array)  # read() did not load the lazy one
    assert not isinstance(loaded.detector_image.data, da.Array)
    xr.testing.assert_identical(loaded, lazy.compute())
    ref = weakref.ref(lazy)
    del lazy, loaded
    gc.collect()
    assert ref() is None  # the catalog and its source let it go
    src2 = cat[beamtime.uids["rsoxs"]]
    assert isinstance(src2.to_dask().detector_image.data, da.Array)
    cat.close()


def _open_fds_on(path: Path) -> int:
    target = str(path.resolve())
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}") == target
        except OSError:
            pass
    return n


def test_faces_leave_no_connection_open(beamtime: Written) -> None:
    path, uid = beamtime.path, beamtime.uids["rsoxs"]
    gc.collect()
    assert _open_fds_on(path) == 0
    assert ResonanceBackendEntrypoint().guess_can_open(path)
    assert ResonanceBackendEntrypoint().guess_can_open(str(path))
    assert _open_fds_on(path) == 0
    ds = xr.open_dataset(path, engine="resonance", group=uid)
    ds2 = open_run_dataset(path, uid)
    tree = xr.open_datatree(path, engine="resonance", chunks={})
    src = RunSource(str(path), uid)
    src.discover()
    src.streams()
    assert _open_fds_on(path) == 0  # nothing is held while the Datasets live
    np.testing.assert_array_equal(ds.detector_image.values, beamtime.frames["rsoxs"])
    np.testing.assert_array_equal(ds2.detector_image.values, beamtime.frames["rsoxs"])
    np.testing.assert_array_equal(tree[f"{uid}/primary"].detector_image.values, beamtime.frames["rsoxs"])
    for d in (ds, ds2, tree):
        d.close()
    with Database(path) as db:
        db.query("SELECT 1")
        assert _open_fds_on(path) == 1
    assert _open_fds_on(path) == 0


_FRESH = """
import json, sys
import xarray as xr
before = set(sys.modules)
ds = xr.open_dataset(sys.argv[1], engine="resonance", group=sys.argv[2])
ds.load()
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"intake", "matplotlib", "click", "tqdm"})
import intake_resonance
print(json.dumps({"heavy": heavy, "version": intake_resonance.__version__, "n": ds.sizes["time"]}))
"""


def test_engine_import_is_light_in_a_fresh_interpreter(beamtime: Written) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _FRESH, str(beamtime.path), beamtime.uids["rsoxs"]],
        capture_output=True, text=True, check=True, timeout=120,
    )
    got = json.loads(out.stdout)
    assert got["heavy"] == []
    assert got["n"] == 5
    from importlib.metadata import version

    assert got["version"] == version("intake-resonance")


_GUESS = """
import json, sys
import numpy as np, xarray as xr
xr.Dataset({"a": ("x", np.arange(3.0))}).to_netcdf(sys.argv[1], engine="h5netcdf")
before = set(sys.modules)
from xarray.backends import list_engines
entry = list_engines()["resonance"]
guessed = entry.guess_can_open(sys.argv[1])
ours = sorted(m for m in set(sys.modules) - before if not m.startswith("xarray"))
with xr.open_dataset(sys.argv[1]) as ds:  # the engine guessed, as any xarray user does
    total = float(ds.a.sum())
print(json.dumps({"guessed": guessed, "new": ours, "total": total}))
"""


def test_other_xarray_users_pay_nothing_for_the_engine(tmp_path: Path) -> None:
    # xarray imports every installed engine's entry point whenever it guesses: ours imports only
    # the standard library's sqlite3 and our own light modules, and reads 16 bytes of a netCDF file.
    out = subprocess.run(
        [sys.executable, "-c", _GUESS, str(tmp_path / "unrelated.nc")], capture_output=True, text=True, check=True, timeout=120
    )
    got = json.loads(out.stdout)
    assert got["guessed"] is False and got["total"] == 3.0
    heavy = [m for m in got["new"] if m.split(".")[0] not in ("intake_resonance", "sqlite3", "_sqlite3", "orjson")]
    assert not [m for m in heavy if m.split(".")[0] in ("dask", "zarr", "numcodecs", "sparse", "numba", "scipy")], heavy
    assert not [m for m in got["new"] if m.startswith(("intake_resonance.datasets", "intake_resonance.beamtime.records"))]


def test_package_import_loads_no_face() -> None:
    code = "import sys, intake_resonance; print(sorted(m for m in sys.modules if m.startswith('intake_resonance')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    # Only the package's front door and its version, no layer.
    assert out.stdout.strip() == "['intake_resonance', 'intake_resonance._version']"


def test_plotting_leaves_the_matplotlib_backend_alone(beamtime: Written, tmp_path: Path) -> None:
    code = """
import sys, matplotlib
matplotlib.use("svg")
from intake_resonance.datasets.open import open_run_dataset
from intake_resonance.analysis.plot import plot_run, save_run_plot
ds = open_run_dataset(sys.argv[1], sys.argv[2])
fig = plot_run(ds)
save_run_plot(ds, sys.argv[3])
import matplotlib.pyplot as plt
print(matplotlib.get_backend(), len(plt.get_fignums()), type(fig).__name__)
"""
    out = tmp_path / "p.png"
    res = subprocess.run(
        [sys.executable, "-c", code, str(beamtime.path), beamtime.uids["rsoxs"], str(out)],
        capture_output=True, text=True, check=True, timeout=120,
    )
    assert res.stdout.split() == ["svg", "0", "Figure"]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


