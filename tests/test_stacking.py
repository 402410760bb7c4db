"""Stacking runs: alignment by event, padding, labels and laziness."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest
from conftest import IMAGE_KEYS, T0
from dask.array import PerformanceWarning

from intake_resonance.beamtime.errors import LayoutError
from intake_resonance.datasets.open import open_run_dataset
from intake_resonance.datasets.stacking import stack_runs
from intake_resonance.faces.intake_drivers import BeamtimeCatalog
from intake_resonance.tools.writer import BeamtimeWriter


@pytest.fixture
def runs(tmp_path):
    path = tmp_path / "bt.db"
    out = []
    with BeamtimeWriter(path, seed=5) as w:
        for k, (n, pol) in enumerate([(4, 0.0), (2, 90.0)]):
            frames = np.full((n, 6, 5), k + 1, np.int32)
            uid = w.open_run("rsoxs", time=T0 + 100 * k, metadata={"pol": pol})
            w.open_stream("primary", {**IMAGE_KEYS, "polarization_position": {"units": "deg"}}, time=T0 + 100 * k)
            for i in range(n):
                ev = w.write_event({"energy_position": 280.0 + i, "polarization_position": pol}, time=T0 + 100 * k + i)
                w.write_image(ev, "detector_image", frames[i])
            w.close_run(time=T0 + 100 * k + 50)
            out.append((uid, frames))
    return path, out


def test_stack_by_uid_pads_shorter_runs(runs):
    path, written = runs
    sets = [open_run_dataset(path, uid) for uid, _ in written]
    st = stack_runs(sets)
    assert st.sizes["run"] == 2 and st.sizes["event"] == 4
    assert st.run.values.tolist() == [written[0][0], written[1][0]]
    assert isinstance(st.detector_image.data, da.Array)  # still lazy
    img = st.detector_image.values
    np.testing.assert_array_equal(img[0], written[0][1])
    np.testing.assert_array_equal(img[1, :2], written[1][1])
    assert np.isnan(img[1, 2:]).all()
    assert st.energy_position.values[1].tolist()[:2] == [280.0, 281.0] and np.isnan(st.energy_position.values[1, 3])
    assert st.attrs["plan_name"] == "rsoxs" and "uid" not in st.attrs


def test_stack_by_variable_or_attr(runs):
    path, written = runs
    sets = [open_run_dataset(path, uid) for uid, _ in written]
    st = stack_runs(sets, dim="polarization", by="polarization_position")
    assert st.polarization.values.tolist() == [0.0, 90.0]
    assert st.uid.values.tolist() == [written[0][0], written[1][0]]
    assert stack_runs(sets, by="pol").run.values.tolist() == [0.0, 90.0]
    with pytest.raises(ValueError, match="not one value"):
        stack_runs(sets, by="energy_position")
    with pytest.raises(ValueError, match="no attribute or variable"):
        stack_runs(sets, by="nope")


def test_catalog_stack_method(runs):
    path, written = runs
    cat = BeamtimeCatalog(str(path))
    st = cat.stack(dim="pol", by="pol")
    assert st.pol.values.tolist() == [0.0, 90.0]
    assert float(st.detector_image.sel(pol=90.0).mean()) == 2.0


# ------------------------------------------------------------ alignment on event coordinates
@pytest.fixture
def energy_runs(tmp_path):
    """Three scans: two on the same energies in different orders, one on a shifted, partial grid."""
    path = tmp_path / "grid.db"
    grids = {"a": [280.0, 282.0, 284.0], "b": [284.0, 280.0, 282.0], "c": [280.02, 283.99]}
    out = {}
    with BeamtimeWriter(path, seed=9) as w:
        for k, (name, energies) in enumerate(grids.items()):
            sample = "PS" if name != "c" else None  # run c has no sample
            uid = w.open_run("rsoxs", sample=sample, time=T0 + 100 * k, metadata={"scan": name})
            w.open_stream("primary", IMAGE_KEYS, time=T0 + 100 * k)
            for i, e in enumerate(energies):
                ev = w.write_event({"energy_position": e, "exposure": 0.1}, time=T0 + 100 * k + i)
                w.write_image(ev, "detector_image", np.full((6, 5), int(round(e)) * 10 + k, np.int32))
            w.close_run(time=T0 + 100 * k + 50)
            out[name] = uid
    return path, out


def test_align_on_energy_puts_equal_energies_together(energy_runs):
    path, uids = energy_runs
    sets = [open_run_dataset(path, uids[n]) for n in ("a", "b")]
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerformanceWarning)
        st = stack_runs(sets, align="energy_position")
        img = st.detector_image.values
    assert st.detector_image.dims == ("run", "energy_position", "detector_image_x", "detector_image_y")
    assert st.energy_position.values.tolist() == [280.0, 282.0, 284.0]
    assert img.dtype == np.int32 and "dtype" not in st.detector_image.attrs  # same grid: no padding, int stays int
    np.testing.assert_array_equal(img[:, :, 0, 0], [[2800, 2820, 2840], [2801, 2821, 2841]])
    assert st.seq_num.dims == ("run", "energy_position") and st.seq_num.values[1].tolist() == [2, 3, 1]
    assert isinstance(st.detector_image.data, da.Array)


def test_align_pads_missing_points_and_snaps_within_tolerance(energy_runs):
    path, uids = energy_runs
    sets = [open_run_dataset(path, uids[n]) for n in ("a", "c")]
    exact = stack_runs(sets, align="energy_position")
    assert exact.sizes["energy_position"] == 5  # 280, 280.02, 282, 283.99, 284: nothing merges
    near = stack_runs(sets, align="energy_position", tolerance=0.05)
    assert near.energy_position.values.tolist() == pytest.approx([280.01, 282.0, 283.995])
    img = near.detector_image.values
    assert img.dtype == np.float64 and "dtype" not in near.detector_image.attrs  # padding promoted to float
    np.testing.assert_array_equal(img[1, :, 0, 0], [2802, np.nan, 2842])  # run c has no 282 eV frame
    assert np.isnat(near.time.values[1, 1]) and not np.isnat(near.time.values[1, 0])


def test_align_errors(energy_runs, runs):
    path, uids = energy_runs
    sets = [open_run_dataset(path, uids[n]) for n in ("a", "b")]
    with pytest.raises(LayoutError, match="no per-event 'polarization_position'") as err:
        stack_runs(sets, align="polarization_position")
    assert isinstance(err.value, ValueError) and uids["a"] in str(err.value) and str(path) in str(err.value)
    with pytest.raises(LayoutError, match="repeat"):  # two scans' energies merge into one point
        stack_runs(sets, align="energy_position", tolerance=5.0)
    with pytest.raises(LayoutError, match="only with align"):
        stack_runs(sets, tolerance=0.1)
    rpath, written = runs
    pair = [open_run_dataset(rpath, uid) for uid, _ in written]
    both = stack_runs(pair, align=["energy_position", "polarization_position"])
    assert both.detector_image.dims[:3] == ("run", "energy_position", "polarization_position")


def test_only_attributes_every_run_shares_are_kept(energy_runs):
    path, uids = energy_runs
    sets = [open_run_dataset(path, uids[n]) for n in ("a", "b", "c")]
    assert sets[0].attrs["sample_name"] == "PS" and "sample_name" not in sets[2].attrs
    st = stack_runs(sets)
    assert "sample_name" not in st.attrs and "scan" not in st.attrs  # one run's sample is not the stack's
    assert st.attrs["plan_name"] == "rsoxs" and st.attrs["exit_status"] == "success"
    assert st.detector_image.dtype == np.float64  # run c is shorter: padded by event number


def test_equal_length_runs_keep_int_frames(energy_runs):
    path, uids = energy_runs
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerformanceWarning)
        st = stack_runs([open_run_dataset(path, uids[n]) for n in ("a", "b")])
        assert st.detector_image.dtype == np.int32 and st.detector_image.values.shape == (2, 3, 6, 5)


def test_catalog_stack_aligns(energy_runs):
    path, uids = energy_runs
    cat = BeamtimeCatalog(str(path))
    try:
        st = cat.stack(runs=[uids["a"], uids["c"]], align="energy_position", tolerance=0.05, by="scan")
    finally:
        cat.close()
    assert st.run.values.tolist() == ["a", "c"] and st.sizes["energy_position"] == 3


def test_runs_without_frames_pad_lazily_without_chunk_warnings(beamtime):
    sets = [open_run_dataset(beamtime.path, beamtime.uids[k]) for k in ("nexafs", "rsoxs")]
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerformanceWarning)
        st = stack_runs(sets, by="plan_name")
        img = st.detector_image
        assert isinstance(img.data, da.Array) and st.sizes["event"] == 8  # the NEXAFS run is longer
        values = img.values
    assert np.isnan(values[0]).all()  # the NEXAFS run has no frames
    np.testing.assert_array_equal(values[1, :5], beamtime.frames["rsoxs"])
    assert np.isnan(values[1, 5:]).all()


def test_alike_runs_stack_as_xarray_concat_does(tmp_path, monkeypatch):
    import xarray as xr

    import intake_resonance.datasets.stacking as stacking

    path = tmp_path / "alike.db"
    with BeamtimeWriter(path, seed=9) as w:
        for k in range(4):
            w.open_run("nexafs", time=T0 + 100 * k, metadata={"edge": "C", "k": k})
            w.open_stream("primary", {"energy_position": {"units": "eV"}, "i0": {"units": "V", "source": f"ai{k % 2}"}}, time=T0 + 100 * k)
            for i in range(5):
                # same seq_num in every run; a 2-D list field; ints, a string, a bool
                w.write_event(
                    {"energy_position": 280.0 + i, "i0": 1.0 + k * i, "spec": [i, k, 1.5], "n": i * k, "mode": "a", "on": i % 2 == 0},
                    time=T0 + 100 * k + i + 1,
                )
            w.close_run(time=T0 + 100 * k + 50)
    uids = BeamtimeCatalog(str(path)).to_dataframe().uid.tolist()
    sets = [open_run_dataset(path, u) for u in uids]
    calls = []
    real = stacking._concat_alike
    monkeypatch.setattr(stacking, "_concat_alike", lambda *a: calls.append(1) or real(*a))
    for kw in ({}, {"by": "k", "dim": "k"}):
        fast = stack_runs(sets, **kw)
        monkeypatch.setattr(stacking, "_concat_alike", lambda *a: None)  # the general path
        slow = stack_runs(sets, **kw)
        monkeypatch.setattr(stacking, "_concat_alike", lambda *a: calls.append(1) or real(*a))
        xr.testing.assert_identical(fast, slow)
        assert list(fast.dims) == list(slow.dims)
        for name in slow.variables:
            assert fast[name].dims == slow[name].dims and fast[name].dtype == slow[name].dtype, name
        assert set(fast.xindexes) == set(slow.xindexes)
    assert fast.seq_num.dims == ("event",) and fast.time.dims == ("k", "event")
    assert fast.i0.attrs == {"units": "V"} and fast.attrs["edge"] == "C" and "k" not in fast.attrs
    assert len(calls) == 2
    # not alike: a shorter run, or frames in dask, take the general path
    assert real([sets[0], sets[1].isel(time=slice(3))], xr.DataArray(["a", "b"], dims="run")) is None
    assert real([sets[0], sets[1].chunk()], xr.DataArray(["a", "b"], dims="run")) is None


@pytest.mark.parametrize("how", ["pad", "align", "same"])
@pytest.mark.parametrize("fmt", ["netcdf", "zarr"])
def test_a_stack_saves_and_reads_back_as_it_is(runs, energy_runs, tmp_path, how, fmt):
    """Padded frames come back NaN (never INT_MIN), unpadded int frames stay int, chunks are regular enough to save."""
    import xarray as xr

    if how == "pad":
        path, written = runs
        st = stack_runs([open_run_dataset(path, uid, chunks=1) for uid, _ in written])
    else:
        path, uids = energy_runs
        names = ("a", "c") if how == "align" else ("a", "b")
        st = stack_runs([open_run_dataset(path, uids[n], chunks=1) for n in names], align="energy_position")
    want = st.load()
    padded = how != "same"
    assert (want.detector_image.dtype.kind == "f") == padded and bool(np.isnan(want.detector_image.values).any()) == padded
    target = tmp_path / f"stack.{'nc' if fmt == 'netcdf' else 'zarr'}"
    with warnings.catch_warnings():
        # NaN cast to int: xarray's SerializationWarning, NumPy's "invalid value encountered in cast"
        warnings.simplefilter("error", xr.SerializationWarning)
        warnings.simplefilter("error", RuntimeWarning)
        if fmt == "netcdf":
            st.to_netcdf(target, engine="h5netcdf")
        else:
            st.to_zarr(target, consolidated=False)
    options = {"engine": "h5netcdf"} if fmt == "netcdf" else {"engine": "zarr", "consolidated": False}
    with xr.open_dataset(target, **options) as back:
        got = back.load()
    assert got.detector_image.dtype == want.detector_image.dtype
    np.testing.assert_array_equal(got.detector_image.values, want.detector_image.values)  # NaN where NaN
    assert not (got.detector_image.values == np.iinfo(np.int32).min).any()


def test_padding_leaves_chunks_zarr_accepts(runs):
    path, written = runs
    st = stack_runs([open_run_dataset(path, uid, chunks=3) for uid, _ in written])
    for axis_chunks in st.detector_image.chunks:
        assert len(set(axis_chunks[:-1])) <= 1 and axis_chunks[-1] <= axis_chunks[0]
