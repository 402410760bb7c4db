"""to_pyhyper: PyHyperScattering's layout (orientation, index, geometry, laziness) and its integrators end to end."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings

import dask.array as da
import intake
import numpy as np
import pytest
import xarray as xr
from conftest import T0

from intake_resonance.analysis.pyhyper import detector_geometry, to_pyhyper
from intake_resonance.beamtime.errors import BeamtimeError, LayoutError
from intake_resonance.beamtime.format import zarr_path_for
from intake_resonance.datasets.open import open_run_dataset
from intake_resonance.tools.demo import write_demo
from intake_resonance.tools.writer import BeamtimeWriter

KEYS = {
    "energy_position": {"dtype": "number", "units": "eV", "source": "motor"},
    "polarization_position": {"dtype": "number", "units": "deg", "source": "motor"},
    "exposure": {"dtype": "number", "units": "s", "source": "plan"},
    "i0": {"dtype": "number", "units": "V", "source": "ai"},
    "detector_image": {"dtype": "int32", "source": "detector", "external": True, "shape": [6, 5]},
}
GEOMETRY = {"sdd": 500.0, "pixel_size": 0.2, "beamcenter_x": 2.5, "beamcenter_y": 3.0}
ENERGIES = (280.0, 285.0, 290.0)


def _write_scan(w: BeamtimeWriter, t0: float, sample: str, pols=(0.0, 90.0), metadata=None, shape=(6, 5)):
    """An energy x polarization scan; frame k is k * 1000 + its pixel's row-major position."""
    uid = w.open_run("en_scan", sample=sample, time=t0, operator="bob", metadata=metadata or {})
    w.open_stream("primary", {**KEYS, "detector_image": {**KEYS["detector_image"], "shape": list(shape)}}, time=t0)
    frames = []
    for k, (pol, e) in enumerate((p, e) for p in pols for e in ENERGIES):
        frame = (k * 1000 + np.arange(shape[0] * shape[1]).reshape(shape)).astype(np.int32)
        ev = w.write_event({"energy_position": e, "polarization_position": pol, "exposure": 0.5 + k, "i0": 1.0 + k / 10},
                           time=t0 + 1 + k)
        w.write_image(ev, "detector_image", frame)
        frames.append(frame)
    w.close_run("success", time=t0 + 50)
    return uid, np.stack(frames)


@pytest.fixture
def scans(tmp_path):
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path, seed=3) as w:
        a = _write_scan(w, T0, "PS", metadata=GEOMETRY)
        b = _write_scan(w, T0 + 100, "PMMA", metadata=GEOMETRY)
        c = _write_scan(w, T0 + 200, "PS", pols=(0.0,), metadata={"sdd": 300.0})
    return path, [a, b, c]


def test_orientation_rows_are_pix_y(scans):
    path, [(uid, frames), *_] = scans
    out = to_pyhyper(open_run_dataset(path, uid))
    assert out.dims == ("system", "pix_y", "pix_x")
    assert out.sizes == {"system": 6, "pix_y": 6, "pix_x": 5}  # frames are 6 rows x 5 columns
    np.testing.assert_array_equal(out.values, frames)  # row r, column c of frame k is out[k, r, c]
    assert out.dtype == np.int32 and out.name == "detector_image"
    assert int(out.isel(system=0, pix_y=1, pix_x=0)) == 5  # second row starts at 5


def test_system_index_and_coordinates(scans):
    path, [(uid, _), *_] = scans
    out = to_pyhyper(open_run_dataset(path, uid))
    assert out.indexes["system"].names == ["energy", "polarization"]
    assert list(out.indexes["system"]) == [(e, p) for p in (0.0, 90.0) for e in ENERGIES]
    assert out.exposure.values.tolist() == [0.5 + k for k in range(6)]
    assert out.i0.dims == ("system",) and out.seq_num.values.tolist() == [1, 2, 3, 4, 5, 6]
    assert out.time.dtype.kind == "M" and set(out.uid.values) == {uid}
    assert out.energy.attrs["units"] == "eV"
    np.testing.assert_array_equal(out.sel(energy=285.0, polarization=90.0).values, 4000 + np.arange(30).reshape(6, 5))
    # only energy varies: it alone indexes the frames, polarization stays a coordinate
    path, [*_, (uid_c, _)] = scans
    one = to_pyhyper(open_run_dataset(path, uid_c), geometry=GEOMETRY)
    assert one.indexes["system"].names == ["energy"] and (one.polarization.values == 0.0).all()
    chosen = to_pyhyper(open_run_dataset(path, uid_c), geometry=GEOMETRY, dims=["energy_position", "seq_num"])
    assert chosen.indexes["system"].names == ["energy", "seq_num"]


def test_unstacked_real_dims_stay_int_and_lazy(scans):
    path, [(uid, frames), *_] = scans
    out = to_pyhyper(open_run_dataset(path, uid), stacked=False)
    assert out.dims == ("energy", "polarization", "pix_y", "pix_x")
    assert isinstance(out.data, da.Array) and out.dtype == np.int32  # a full grid needs no padding
    np.testing.assert_array_equal(out.sel(polarization=90.0).values, frames[3:])
    assert out.exposure.dims == ("energy", "polarization")


def test_frames_stay_lazy_until_computed(scans):
    path, [(uid, _), *_] = scans
    ds = open_run_dataset(path, uid)
    for chunk_dir in (zarr_path_for(path) / "runs" / uid / "detector_image").glob("c*"):
        shutil.rmtree(chunk_dir)  # no frame left to read: building the layout must not need one
    out = to_pyhyper(ds)
    assert isinstance(out.data, da.Array)
    with pytest.raises(BeamtimeError):
        out.values


def test_geometry_converted_to_pyfai_attrs(scans):
    path, [(uid, _), *_] = scans
    ds = open_run_dataset(path, uid)
    out = to_pyhyper(ds)  # from the run metadata
    assert out.attrs["dist"] == pytest.approx(0.5)
    assert out.attrs["pixel1"] == out.attrs["pixel2"] == pytest.approx(2e-4)
    assert out.attrs["poni1"] == pytest.approx(3.0 * 2e-4)  # beamcenter_y (rows) -> poni1
    assert out.attrs["poni2"] == pytest.approx(2.5 * 2e-4)
    assert (out.attrs["rot1"], out.attrs["rot2"], out.attrs["rot3"]) == (0.0, 0.0, 0.0)
    assert out.attrs["units"] == "counts"
    assert "dtype" not in out.attrs and out.attrs["field"] == "detector_image"
    given = detector_geometry(ds, {"pixel_size": [0.1, 0.3], "sdd": 250, "rot2": 0.01})  # wins over metadata
    assert given["pixel1"] == pytest.approx(1e-4) and given["pixel2"] == pytest.approx(3e-4)
    assert given["poni1"] == pytest.approx(3.0e-4) and given["poni2"] == pytest.approx(7.5e-4)
    assert given["dist"] == pytest.approx(0.25) and given["rot2"] == 0.01


def test_missing_geometry_names_the_keys(scans):
    path, [*_, (uid, _)] = scans  # this run records only sdd
    ds = open_run_dataset(path, uid)
    with pytest.raises(ValueError, match=r"missing pixel_size, beamcenter_x, beamcenter_y") as err:
        to_pyhyper(ds)
    assert isinstance(err.value, LayoutError) and uid in str(err.value) and str(path) in str(err.value)
    assert "sdd" not in str(err.value).split("missing")[1].split("(")[0]
    with pytest.raises(ValueError, match="positive"):
        to_pyhyper(ds, geometry={**GEOMETRY, "pixel_size": 0})
    with pytest.raises(ValueError, match="unknown geometry keys"):
        to_pyhyper(ds, geometry={**GEOMETRY, "sdd_mm": 3})


def test_several_runs_by_sample(scans):
    path, [(a, fa), (b, fb), _] = scans
    out = to_pyhyper([open_run_dataset(path, a), open_run_dataset(path, b)], by="sample_name")
    assert out.indexes["system"].names == ["sample_name", "energy", "polarization"]
    np.testing.assert_array_equal(out.sel(sample_name="PMMA").values, fb)
    assert out.sizes["system"] == 12 and out.uid.values.tolist() == [a] * 6 + [b] * 6
    assert "sample_name" not in out.attrs and "uid" not in out.attrs and out.attrs["plan_name"] == "en_scan"
    with pytest.raises(LayoutError, match="repeat"):  # the same (energy, polarization) in both runs
        to_pyhyper([open_run_dataset(path, a), open_run_dataset(path, b)])


def test_accessor_and_intake_faces(scans):
    path, [(a, fa), (b, fb), _] = scans
    ds = open_run_dataset(path, a)
    assert ds.resonance.to_pyhyper(stacked=False).dims == ("energy", "polarization", "pix_y", "pix_x")
    cat = intake.open_resonance_beamtime(str(path))
    try:
        np.testing.assert_array_equal(cat[a].to_pyhyper().values, fa)
        out = cat.search(sample="PMMA").to_pyhyper()
        np.testing.assert_array_equal(out.values, fb)
        both = cat.to_pyhyper(runs=[0, 1], by="sample_name")
        assert both.sizes["system"] == 12
    finally:
        cat.close()


def test_package_import_stays_light():
    code = "import sys, intake_resonance; print('pyhyper' in ''.join(sys.modules), 'PyHyperScattering' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


# ------------------------------------------------------------ PyHyperScattering end to end
@pytest.fixture(scope="module")
def demo_catalog(tmp_path_factory):
    db = write_demo(tmp_path_factory.mktemp("demo"), frame_shape=(96, 96))
    cat = intake.open_resonance_beamtime(str(db))
    yield cat
    cat.close()


def _integrator(template: xr.DataArray):
    phs = pytest.importorskip("PyHyperScattering.PFEnergySeriesIntegrator")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no mask", "default geometry" notes
        return phs.PFEnergySeriesIntegrator(
            geomethod="template_xr", template_xr=template, maskmethod="none", integration_method="csr", npts=150
        )


def _ring_q(i_q: xr.DataArray) -> np.ndarray:
    """q of the ring's peak per energy: the maximum beyond the beamstop, refined by a parabola."""
    q = i_q.q.values
    prof = i_q.transpose("energy", "q").values
    peaks = []
    for row in prof:
        row = np.where(q > 0.0008, np.nan_to_num(row), 0)
        k = int(np.argmax(row))
        y0, y1, y2 = row[k - 1 : k + 2]
        shift = 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)
        peaks.append(q[k] + shift * (q[k + 1] - q[k]))
    return np.array(peaks)


def test_phs_energy_series_lazy_and_loaded(demo_catalog):
    run = demo_catalog.search(plan_name="rsoxs", sample="P3HT:PCBM")[-1]
    frames = run.to_pyhyper(stacked=False)  # one real dim: what the integrator's lazy mode takes
    assert frames.dims == ("energy", "pix_y", "pix_x") and isinstance(frames.data, da.Array)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lazy = _integrator(frames).integrateImageStack(frames, method="dask")
        assert isinstance(lazy.data, da.Array)
        assert {"q", "chi", "energy"} <= set(lazy.dims)
        lazy = lazy.compute()
        loaded = _integrator(frames).integrateImageStack(frames.load())
    assert {"q", "chi", "energy"} <= set(loaded.dims)
    np.testing.assert_allclose(lazy.transpose(*loaded.dims).values, loaded.values, equal_nan=True)
    peaks = _ring_q(loaded.mean("chi"))
    assert len(peaks) == 16  # every energy of the scan
    assert np.abs(peaks / np.median(peaks) - 1).max() < 0.03  # one q at every energy
    # the frames' own ring moves inwards with energy: q is what stays put
    assert 0.0015 < np.median(peaks) < 0.0021


def test_phs_stacked_system_and_anisotropy_sign(demo_catalog):
    run = demo_catalog.search(plan_name="en_scan", sample="P3HT:PCBM")[-1]
    frames = run.to_pyhyper()
    assert frames.indexes["system"].names == ["energy", "polarization"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = _integrator(frames).integrateImageStack(frames)
    assert {"q", "chi"} <= set(out.dims) and {"energy", "polarization"} <= set(out.coords)
    ring = out.unstack("system").sel(q=slice(0.0014, 0.0022)).mean("q")

    def chi_slice(centre: float) -> xr.DataArray:
        return ring.sel(chi=slice(centre - 10, centre + 10)).mean("chi")

    ar = (chi_slice(0) - chi_slice(-90)) / (chi_slice(0) + chi_slice(-90))  # PHS's AR: (para - perp) / sum
    assert (ar.sel(polarization=0.0) > 0.05).all()  # E along the rows' direction of travel, pix_x
    assert (ar.sel(polarization=90.0) < -0.05).all()
    # PHS's own accessor agrees on the sign
    phs_ar = ring.sel(polarization=0.0).rsoxs.AR(chi_width=10)
    assert (phs_ar > 0).all()
