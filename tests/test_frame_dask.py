"""One frame through the dask Dataset: read from its reader directly, the same values dask computes."""

from __future__ import annotations

import pickle

import dask.array as da
import numpy as np
import pytest
from conftest import IMAGE_KEYS, T0

from intake_resonance.datasets.frame_dask import FrameDaskArray
from intake_resonance.datasets.open import open_run_dataset
from intake_resonance.tools.writer import BeamtimeWriter


@pytest.fixture
def image_run(tmp_path):
    path = tmp_path / "img.db"
    frames = np.arange(5 * 6 * 5, dtype=np.int32).reshape(5, 6, 5)
    with BeamtimeWriter(path, seed=4) as w:
        uid = w.open_run("rsoxs", time=T0)
        w.open_stream("primary", IMAGE_KEYS, time=T0)
        for i in range(5):
            ev = w.write_event({"energy_position": 280.0 + i, "exposure": 0.1}, time=T0 + 1 + i)
            if i != 3:  # event 3 has no frame: masked
                w.write_image(ev, "detector_image", frames[i])
        w.close_run(time=T0 + 10)
    return path, uid, frames


@pytest.mark.parametrize("chunks", [None, 2])
def test_one_frame_values_equal_what_dask_computes(image_run, chunks):
    path, uid, frames = image_run
    ds = open_run_dataset(path, uid, chunks=chunks)
    data = ds.detector_image.data
    assert isinstance(data, FrameDaskArray) and isinstance(data, da.Array)
    for k in (0, 2, 3, 4, -1, -5):
        got = ds.detector_image[k].values
        want = data[k].compute()
        assert got.dtype == want.dtype == data.dtype and data.dtype.kind == "f" and got.shape == (6, 5)
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ds.detector_image[1].values, frames[1])
    assert np.isnan(ds.detector_image[3].values).all()
    np.testing.assert_array_equal(np.asarray(data[4]), frames[4])
    np.testing.assert_array_equal(ds.detector_image.isel(time=2).values, frames[2])


def test_other_selections_and_operations_are_plain_dask(image_run):
    path, uid, frames = image_run
    ds = open_run_dataset(path, uid)
    data = ds.detector_image.data
    assert type(data[1:3]) is da.Array and type(data.mean(axis=0)) is da.Array
    np.testing.assert_array_equal(data[1:3].compute(), frames[1:3])
    np.testing.assert_array_equal(ds.detector_image[1, 2:4].values, frames[1, 2:4])
    assert type(pickle.loads(pickle.dumps(data))) is da.Array
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(data))[0].compute(), frames[0])
    with pytest.raises(IndexError):
        data[5]
