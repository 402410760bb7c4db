"""Stacking runs: alignment by event, padding, labels and laziness."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from conftest import IMAGE_KEYS, T0

from intake_resonance.dataset import open_run_dataset
from intake_resonance.intake_drivers import BeamtimeCatalog
from intake_resonance.stacking import stack_runs
from intake_resonance.writer import BeamtimeWriter


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
