"""The resonance xarray engine: group forms, laziness, chunks and the DataTree."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from intake_resonance.beamtime.errors import RunNotFoundError
from intake_resonance.datasets.engine import split_group
from intake_resonance.datasets.open import FrameArray, open_run_dataset
from intake_resonance.faces.xarray_backend import ResonanceBackendEntrypoint


@pytest.mark.parametrize("form", ["{uid}", "/{uid}", "{uid}/primary", "{p}", "/{p}/primary/"])
def test_group_forms_open_primary(beamtime, form):
    uid = beamtime.uids["rsoxs"]
    ds = xr.open_dataset(beamtime.path, engine="resonance", group=form.format(uid=uid, p=uid[:7]))
    assert ds.attrs["uid"] == uid and ds.attrs["stream"] == "primary"
    np.testing.assert_array_equal(ds.detector_image.values, beamtime.frames["rsoxs"])


def test_other_stream_and_drop_variables(beamtime):
    uid = beamtime.uids["nexafs"]
    ds = xr.open_dataset(beamtime.path, engine="resonance", group=f"{uid}/baseline", drop_variables="beam_current")
    assert list(ds.data_vars) == [] and "sam_x_position" in ds.coords  # a motor: a coordinate
    ds = xr.open_dataset(beamtime.path, engine="resonance", group=uid, drop_variables=["i0", "energy_position"])
    assert list(ds.data_vars) == ["photodiode"] and "energy_position" not in ds.variables  # coordinates drop too


def test_frames_lazy_without_chunks_and_dask_with(beamtime):
    uid = beamtime.uids["rsoxs"]
    ds = xr.open_dataset(beamtime.path, engine="resonance", group=uid)
    assert not ds.detector_image.variable._in_memory
    np.testing.assert_array_equal(ds.detector_image[2:4, 1, ::2].values, beamtime.frames["rsoxs"][2:4, 1, ::2])
    ds = xr.open_dataset(beamtime.path, engine="resonance", group=uid, chunks={})
    assert ds.detector_image.chunks is not None
    assert ds.detector_image.encoding["preferred_chunks"]["detector_image_x"] == 6
    np.testing.assert_array_equal(ds.detector_image.values, beamtime.frames["rsoxs"])
    with pytest.warns(UserWarning, match="separate the stored chunks"):  # preferred: all 5 frames
        ds = xr.open_dataset(beamtime.path, engine="resonance", group=uid, chunks={"time": 2})
    assert ds.detector_image.chunks[0] == (2, 2, 1)


def test_engine_and_dataset_function_agree(beamtime):
    uid = beamtime.uids["rsoxs"]
    via_engine = xr.open_dataset(beamtime.path, engine="resonance", group=uid, chunks={})
    direct = open_run_dataset(beamtime.path, uid)
    xr.testing.assert_identical(via_engine, direct)
    assert via_engine.detector_image.chunks == direct.detector_image.chunks


def test_group_required_and_unknown(beamtime):
    with pytest.raises(RunNotFoundError, match="2 run"):
        xr.open_dataset(beamtime.path, engine="resonance")
    with pytest.raises(RunNotFoundError, match="no run has this uid"):
        xr.open_dataset(beamtime.path, engine="resonance", group="ffffffffff")
    with pytest.raises(ValueError):
        split_group("a/b/c")


def test_datatree_paths_and_attrs(beamtime):
    tree = xr.open_datatree(beamtime.path, engine="resonance")
    n, r = beamtime.uids["nexafs"], beamtime.uids["rsoxs"]
    assert set(tree.children) == {n, r}
    assert set(tree[n].children) == {"baseline", "primary"} and set(tree[r].children) == {"primary"}
    assert tree[n].attrs["plan_name"] == "nexafs" and "time" not in tree[n].dims
    assert tree.attrs["schema_version"] == 2
    np.testing.assert_array_equal(tree[f"{r}/primary"]["detector_image"].values, beamtime.frames["rsoxs"])
    groups = ResonanceBackendEntrypoint().open_groups_as_dict(beamtime.path)
    assert sorted(groups) == sorted(["/", f"/{n}", f"/{n}/baseline", f"/{n}/primary", f"/{r}", f"/{r}/primary"])
    data = groups[f"/{r}/primary"].detector_image.variable._data
    assert isinstance(data.array, FrameArray)  # lazy, not read


def test_guess_can_open_by_content(beamtime, tmp_path):
    be = ResonanceBackendEntrypoint()
    assert be.guess_can_open(beamtime.path)
    renamed = tmp_path / "copy.sqlite"
    renamed.write_bytes(beamtime.path.read_bytes())
    assert be.guess_can_open(renamed)
    other = tmp_path / "x.db"
    other.write_text("not sqlite")
    assert not be.guess_can_open(other)
    assert not be.guess_can_open(tmp_path / "missing.db")
    assert xr.open_dataset(beamtime.path, group=beamtime.uids["nexafs"]).attrs["plan_name"] == "nexafs"
