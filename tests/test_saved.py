"""Saved as read: every kind of Dataset we hand out writes to netCDF and Zarr as it is and reads back equal.

Kinds: one run (each of the demo's run kinds), many runs opened in bulk,
stacks (the NumPy path of scalar-only runs and the dask path with frames,
padded), and ``to_pyhyper``'s unstacked output. NaN stays NaN, integers
stay integers where nothing was padded, chunks are ones Zarr accepts.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from intake_resonance import RunSet
from intake_resonance.tools import demo


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> RunSet:
    return RunSet(demo.write_demo(tmp_path_factory.mktemp("demo"), frame_shape=(16, 16)))


def _round_trip(ds: xr.Dataset, target: Path) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("error", xr.SerializationWarning)  # a NaN cast to an integer, among others
        warnings.simplefilter("error", RuntimeWarning)
        warnings.filterwarnings("ignore", "Consolidated metadata", UserWarning)
        if target.suffix == ".nc":
            ds.to_netcdf(target, engine="h5netcdf")
            options: dict = {"engine": "h5netcdf"}
        else:
            ds.to_zarr(target, consolidated=False)
            options = {"engine": "zarr", "consolidated": False}
    with xr.open_dataset(target, **options) as back:
        return back.load()


def _kinds(runs: RunSet) -> dict[str, xr.Dataset]:
    from intake_resonance.analysis.pyhyper import to_pyhyper

    rsoxs = runs.narrow(plan_name="rsoxs")
    kinds = {f"run {i} ({runs.entry_metadata(u)['plan_name']})": runs.open(u) for i, u in enumerate(runs.uids())}
    kinds["many runs, bulk"] = runs.narrow(plan_name="en_scan").datasets()[0]
    kinds["stack of scalar runs (padded)"] = runs.narrow(plan_name="nexafs").stack(by="uid")
    en_scans = runs.narrow(plan_name="en_scan")
    kinds["stack of frames (padded, aligned)"] = en_scans.stack(align=["energy_position", "polarization_position"], by="uid")
    kinds["to_pyhyper, unstacked"] = to_pyhyper(rsoxs.datasets(), stacked=False, by="sample_name").to_dataset(name="I")
    return kinds


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_every_kind_saves_as_read(runs: RunSet, tmp_path: Path, suffix: str) -> None:
    for n, (kind, ds) in enumerate(_kinds(runs).items()):
        want = ds.load()
        got = _round_trip(ds, tmp_path / f"{n}{suffix}")
        assert set(got.variables) == set(want.variables), kind
        for name, var in want.variables.items():
            assert got[name].dtype == var.dtype or var.dtype.kind in "OU", (kind, name)
            if var.dtype.kind in "fiub":
                np.testing.assert_array_equal(got[name].values, var.values, err_msg=f"{kind}: {name}")  # NaN where NaN
            if var.dtype.kind == "f":
                assert not (got[name].values == np.iinfo(np.int32).min).any(), (kind, name)


def test_a_stacked_pyhyper_array_saves_once_its_multiindex_is_reset(runs: RunSet, tmp_path: Path) -> None:
    from intake_resonance.analysis.pyhyper import to_pyhyper

    da = to_pyhyper(runs.narrow(plan_name="rsoxs").datasets(), by="sample_name")
    assert "system" in da.indexes  # PyHyperScattering's layout: netCDF and Zarr cannot store a MultiIndex
    flat = da.reset_index("system").to_dataset(name="I")
    got = _round_trip(flat, tmp_path / "phs.nc")
    back = got.I.set_xindex(list(da.indexes["system"].names))
    np.testing.assert_array_equal(back.values, da.values)
    assert list(back.indexes["system"]) == list(da.indexes["system"])
