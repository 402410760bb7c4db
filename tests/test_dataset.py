"""Runs as xarray Datasets: values, dims, dtypes, coords and attrs against what was written."""

from __future__ import annotations

import pickle
import shutil

import dask
import numpy as np
import pytest
import xarray as xr
from conftest import IMAGE_KEYS, T0, write_rsoxs

from intake_resonance import RunSet
from intake_resonance.beamtime.errors import FramesMissingError, RunNotFoundError
from intake_resonance.beamtime.records import column_array as column_to_array
from intake_resonance.datasets.open import frame_chunks, open_run_dataset, open_run_tree
from intake_resonance.tools.writer import BeamtimeWriter


def test_nexafs_scalars_coords_and_attrs(beamtime):
    uid = beamtime.uids["nexafs"]
    ds = open_run_dataset(beamtime.path, uid)
    written = beamtime.events["nexafs"]
    assert ds.sizes == {"time": len(written)}
    assert list(ds.data_vars) == ["i0", "photodiode"]  # readings
    assert ds.energy_position.dims == ("time",) and "energy_position" in ds.coords  # a motor: a coordinate
    for name in ("energy_position", "i0", "photodiode"):
        assert ds[name].dtype == np.float64
        np.testing.assert_array_equal(ds[name].values, [e[name] for e in written])
    # baseline took seq_num 1, so primary continues at 2
    np.testing.assert_array_equal(ds.seq_num.values, np.arange(2, 2 + len(written)))
    assert ds.seq_num.dtype == np.int64
    assert ds.time.dtype == np.dtype("datetime64[ns]")
    expected = (np.array([T0 + 1 + i for i in range(len(written))]) * 1e9).astype("datetime64[ns]")
    np.testing.assert_array_equal(ds.time.values, expected)
    assert ds.energy_position.attrs == {"dtype": "number", "units": "eV", "source": "motor"}
    a = ds.attrs
    assert a["uid"] == uid and a["plan_name"] == "nexafs" and a["stream"] == "primary"
    assert a["time_start"] == "2026-03-05T08:40:00+00:00"
    assert a["exit_status"] == "success" and a["num_events"] == len(written) + 1
    assert a["operator"] == "alice" and a["sample_name"] == "PS"
    assert a["edge"] == "C" and a["purpose"] == "ref"


def test_baseline_stream(beamtime):
    ds = open_run_dataset(beamtime.path, beamtime.uids["nexafs"], "baseline")
    assert ds.attrs["stream"] == "baseline"
    assert ds.seq_num.values.tolist() == [1]
    assert ds.sam_x_position.values.tolist() == [1.25]
    assert ds.beam_current.attrs["units"] == "mA"


def test_unknown_stream_of_closed_run_names_streams(beamtime):
    with pytest.raises(RunNotFoundError) as err:
        open_run_dataset(beamtime.path, beamtime.uids["nexafs"], "nope")
    msg = str(err.value)
    assert "'nope'" in msg and "'baseline'" in msg and "'primary'" in msg and str(beamtime.path) in msg


def test_frames_are_lazy_and_correct(beamtime):
    uid = beamtime.uids["rsoxs"]
    ds = open_run_dataset(beamtime.path, uid)
    img = ds.detector_image
    assert img.dims == ("time", "detector_image_x", "detector_image_y")
    assert img.dtype == np.int32 and img.shape == (5, 6, 5)
    assert isinstance(img.data, dask.array.Array)
    np.testing.assert_array_equal(img.values, beamtime.frames["rsoxs"])
    np.testing.assert_allclose(img.mean("time").values, beamtime.frames["rsoxs"].mean(0))
    assert img.attrs["external"] == 1 and img.attrs["shape"] == [6, 5] and img.attrs["units"] == "counts"
    assert "detector_image" not in ds.energy_position.dims


def test_frame_attrs_stay_true_after_reductions(tmp_path):
    """units: counts; the stored dtype lives in encoding (while the variable has it), never in attrs."""
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        uid, _, frames = write_rsoxs(w, T0)  # descriptor says dtype int32, no units
        gap = w.open_run("rsoxs", time=T0 + 100)
        w.open_stream("primary", IMAGE_KEYS, time=T0 + 100)
        ev = w.write_event({"energy_position": 1.0}, time=T0 + 101)
        w.write_image(ev, "detector_image", frames[0])
        w.write_event({"energy_position": 2.0}, time=T0 + 102)  # no frame: the variable becomes float
        w.close_run(time=T0 + 103)
    img = open_run_dataset(path, uid).detector_image
    assert img.attrs["units"] == "counts" and "dtype" not in img.attrs
    assert img.dtype == np.int32 and img.encoding["dtype"] == np.int32
    mean = img.mean("time", keep_attrs=True)  # the default changed in xarray 2025.11
    assert mean.dtype == np.float64 and "dtype" not in mean.attrs and mean.attrs["units"] == "counts"
    np.testing.assert_allclose(mean.values, frames.mean(0))
    masked = open_run_dataset(path, gap).detector_image
    assert masked.dtype == np.float64 and "dtype" not in masked.attrs and "dtype" not in masked.encoding
    np.testing.assert_array_equal(masked.values[0], frames[0])
    assert np.isnan(masked.values[1]).all()


def test_open_reads_no_frame(beamtime):
    uid = beamtime.uids["rsoxs"]
    shutil.rmtree(beamtime.path.with_suffix(".zarr"))
    ds = open_run_dataset(beamtime.path, uid)  # opening needs no frame
    np.testing.assert_array_equal(ds.exposure.values, [0.1] * 5)
    with pytest.raises(FramesMissingError, match="does not exist"):
        ds.detector_image.values


def test_refs_out_of_order_and_partial_frames(tmp_path):
    path = tmp_path / "bt.db"
    frames = np.arange(4 * 6 * 5, dtype=np.uint16).reshape(4, 6, 5)
    with BeamtimeWriter(path) as w:
        uid = w.open_run("rsoxs", time=T0)
        w.open_stream("primary", {**IMAGE_KEYS, "aux": {"dtype": "uint16", "external": True}}, time=T0)
        order = [2, 0, 3, 1]
        for i in range(4):
            ev = w.write_event({"energy_position": 280.0 + i}, time=T0 + i)
            w.write_image(ev, "detector_image", frames[i].astype(np.int32), index=order[i])
            if i in (1, 3):  # second field only on some events
                w.write_image(ev, "aux", frames[i])
        w.close_run(time=T0 + 9)
    ds = open_run_dataset(path, uid)
    np.testing.assert_array_equal(ds.detector_image.values, frames.astype(np.int32))
    aux = ds.aux
    assert aux.dtype == np.float32  # uint16 promoted so gaps can be NaN
    assert np.isnan(aux.values[[0, 2]]).all()
    np.testing.assert_array_equal(aux.values[[1, 3]], frames[[1, 3]])


def test_mixed_types_with_missing_values(tmp_path):
    path = tmp_path / "bt.db"
    rows = [
        {"i": 1, "ig": 1, "f": 1.5, "b": True, "bg": True, "s": "a", "sg": "x", "l": [1, 2], "m": 1},
        {"i": 2, "f": None, "b": False, "s": "bb", "sg": None, "l": [3, 4], "m": 2.5},
        {"i": 3, "ig": 3, "f": 2.5, "b": True, "bg": False, "s": "c", "l": [5, 6], "m": 3},
    ]
    with BeamtimeWriter(path) as w:
        uid = w.open_run("scan", time=T0)
        w.open_stream("primary", {}, time=T0)
        for k, r in enumerate(rows):
            w.write_event(r, time=T0 + k)
        w.close_run(time=T0 + 5)
    ds = open_run_dataset(path, uid)
    assert ds.i.dtype == np.int64 and ds.i.values.tolist() == [1, 2, 3]
    assert ds.ig.dtype == np.float64 and np.isnan(ds.ig.values[1]) and ds.ig.values[2] == 3
    assert ds.f.dtype == np.float64 and np.isnan(ds.f.values[1])
    assert ds.b.dtype == bool and ds.b.values.tolist() == [True, False, True]
    assert ds.bg.dtype == np.float64 and ds.bg.values[0] == 1.0 and np.isnan(ds.bg.values[1])
    assert ds.s.dtype == object and ds.s.values.tolist() == ["a", "bb", "c"]  # variable-width text
    # xarray stores the gaps of an object variable as NaN (it converts None on the way in)
    assert ds.sg.dtype == object and ds.sg.values[0] == "x" and ds.sg.isnull().values.tolist() == [False, True, True]
    assert ds.l.dims == ("time", "l_dim_0") and ds.l.values.tolist() == [[1, 2], [3, 4], [5, 6]]
    assert ds.m.dtype == np.float64 and ds.m.values.tolist() == [1.0, 2.5, 3.0]


@pytest.mark.parametrize(
    ("values", "dtype", "is_2d"),
    [
        ([1, 2], np.int64, False),
        ([None, None], np.float64, False),
        ([[1.0, None], None], np.float64, True),
        ([1, "a"], object, False),
        ([[1], [1, 2]], object, False),
    ],
)
def test_column_to_array_rules(values, dtype, is_2d):
    arr, two = column_to_array(values)
    assert arr.dtype == dtype and two is is_2d


def test_open_run_and_schema_1(tmp_path):
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path, schema_version=1) as w:
        done, written, frames = write_rsoxs(w, T0)
        uid = w.open_run("rsoxs", sample="PS", time=T0 + 50)
        w.open_stream("primary", IMAGE_KEYS, time=T0 + 50)
        w.write_event({"energy_position": 1.0}, time=T0 + 51)
        w.close()  # the run is never closed; close() commits the event written so far
    ds = open_run_dataset(path, uid)
    assert ds.sizes["time"] == 1 and ds.energy_position.values.tolist() == [1.0]
    # num_events counts the committed events, an open run's too (the runs column says 0 until it closes)
    assert "time_stop" not in ds.attrs and "exit_status" not in ds.attrs and ds.attrs["num_events"] == 1
    # declared image field without frames keeps its variable with the descriptor's shape
    assert ds.detector_image.shape == (1, 6, 5) and np.isnan(ds.detector_image.values).all()
    ds1 = open_run_dataset(path, done)
    np.testing.assert_array_equal(ds1.detector_image.values, frames)


@pytest.mark.parametrize(
    "shape, kept", [([6, 5], True), ([10**9, 10**9], False), ([6, -1], False), ([True, 5], False), ("6x5", False)]
)
def test_placeholder_of_a_field_without_frames_needs_a_plausible_shape(tmp_path, shape, kept):
    path = tmp_path / "bt.db"
    keys = {**IMAGE_KEYS, "detector_image": {**IMAGE_KEYS["detector_image"], "shape": shape}}
    with BeamtimeWriter(path) as w:
        uid = w.open_run("rsoxs", time=T0)
        w.open_stream("primary", keys, time=T0)
        w.write_event({"energy_position": 1.0}, time=T0 + 1)
        w.close()
    ds = open_run_dataset(path, uid)
    assert ds.energy_position.values.tolist() == [1.0]
    assert ("detector_image" in ds) is kept  # a crafted shape never becomes an impossible all-NaN array
    if kept:
        assert ds.detector_image.shape == (1, 6, 5) and np.isnan(ds.detector_image.values).all()


def test_an_absurd_frame_shape_in_image_refs_is_refused(tmp_path):
    from intake_resonance.beamtime.errors import FrameMismatchError

    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        uid, _, _ = write_rsoxs(w, T0, n=2)
        w.connection.execute("UPDATE image_refs SET shape_x = 1000000000, shape_y = 1000000000")
        w.connection.commit()
    with pytest.raises(FrameMismatchError, match="exceeds 65536 pixels a side") as info:
        open_run_dataset(path, uid)
    assert info.value.run == uid and info.value.field == "detector_image"


def test_live_run_without_streams_is_empty(tmp_path):
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        uid = w.open_run("scan", time=T0)
        w.close()
    ds = open_run_dataset(path, uid)
    assert ds.sizes.get("time", 0) == 0 and ds.attrs["uid"] == uid


def test_chunks_default_regular_and_override(beamtime):
    uid = beamtime.uids["rsoxs"]
    frame_bytes = 6 * 5 * 4
    with dask.config.set({"array.chunk-size": f"{2 * frame_bytes}B"}):
        ds = open_run_dataset(beamtime.path, uid)
    assert ds.detector_image.data.chunks[0] == (2, 2, 1)
    ds = open_run_dataset(beamtime.path, uid, chunks=3)
    assert ds.detector_image.data.chunks[0] == (3, 2)
    np.testing.assert_array_equal(ds.detector_image.values, beamtime.frames["rsoxs"])
    assert frame_chunks(10, (4, 4), np.dtype("int32"), chunks=(5, 2, 2)) == (5, 2, 2)


def test_graph_keys_stable_and_pickle(beamtime):
    uid = beamtime.uids["rsoxs"]
    a = open_run_dataset(beamtime.path, uid)
    b = open_run_dataset(beamtime.path, uid)
    assert a.detector_image.data.name == b.detector_image.data.name
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(c.detector_image.values, beamtime.frames["rsoxs"])


def test_netcdf_and_zarr_round_trips(beamtime, tmp_path):
    for key in ("nexafs", "rsoxs"):
        ds = open_run_dataset(beamtime.path, beamtime.uids[key])
        nc = tmp_path / f"{key}.nc"
        ds.to_netcdf(nc, engine="h5netcdf")
        with xr.open_dataset(nc, engine="h5netcdf") as back:
            xr.testing.assert_identical(back.load(), ds.load())
        zs = tmp_path / f"{key}.zarr"
        ds.to_zarr(zs, consolidated=False)
        with xr.open_zarr(zs, consolidated=False) as back:
            xr.testing.assert_identical(back.load(), ds.load())


def test_run_tree_has_every_stream(beamtime):
    uid = beamtime.uids["nexafs"]
    tree = open_run_tree(beamtime.path, uid[:6])
    assert set(tree.children) == {"baseline", "primary"}
    assert tree.attrs["uid"] == uid and "stream" not in tree.attrs
    assert tree["primary"].to_dataset().i0.values.tolist() == [e["i0"] for e in beamtime.events["nexafs"]]


def test_computes_on_distributed_process_workers(beamtime, process_client):
    ds = open_run_dataset(beamtime.path, beamtime.uids["rsoxs"], chunks=2)
    mean = process_client.compute(ds.detector_image.mean("time")).result()
    total = process_client.compute(ds.detector_image.sum()).result()
    np.testing.assert_allclose(mean.values, beamtime.frames["rsoxs"].mean(0))
    assert int(total) == int(beamtime.frames["rsoxs"].sum())


def test_motors_are_coordinates_that_survive_arithmetic_groupby_and_sel(beamtime):
    ds = open_run_dataset(beamtime.path, beamtime.uids["rsoxs"])
    assert "energy_position" in ds.coords and "i0" not in ds.coords
    ratio = ds.detector_image / ds.exposure
    assert "energy_position" in ratio.coords  # arithmetic keeps coordinates, not data variables
    means = ds.detector_image.groupby("energy_position").mean()
    energies = sorted({e["energy_position"] for e in beamtime.events["rsoxs"]})
    assert list(means.energy_position.values) == energies
    one = ds.set_xindex("energy_position").sel(energy_position=energies[2])
    np.testing.assert_array_equal(one.detector_image.values, beamtime.frames["rsoxs"][2])
    stacked = RunSet(beamtime.path).stack()
    assert "energy_position" in stacked.coords
