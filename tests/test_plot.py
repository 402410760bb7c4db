"""Plots: inspected through the returned Figure (axes, labels, titles, image arrays), not pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import T0, write_nexafs, write_rsoxs
from matplotlib.figure import Figure

from intake_resonance.analysis.plot import NothingToPlotError, grid_axes, plot_run
from intake_resonance.datasets.open import open_run_dataset
from intake_resonance.tools import demo
from intake_resonance.tools.writer import BeamtimeWriter


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo.write_demo(tmp_path_factory.mktemp("demo"), frame_shape=(24, 16))


def _runs(path: Path, plan: str) -> list[str]:
    import intake

    cat = intake.open_resonance_beamtime(str(path))
    try:
        return cat.search(plan_name=plan, exit_status="success").to_dataframe().uid.tolist()
    finally:
        cat.close()


def test_frame_rows_are_vertical_and_labelled(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        uid, events, frames = write_rsoxs(w, T0)  # 6 x 5 frames: rows (x) != columns (y)
    ds = open_run_dataset(path, uid)
    fig = plot_run(ds, frame=2)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    im = ax.images[0]
    np.testing.assert_array_equal(im.get_array(), frames[2])  # drawn as stored: array rows are <field>_x
    assert im.get_array().shape == (6, 5) and im.origin == "upper"
    assert ax.get_ylim() == (5.5, -0.5) and ax.get_xlim() == (-0.5, 4.5)  # 6 rows down the page, 5 columns across
    assert ax.get_ylabel().startswith("detector_image_x") and "rows" in ax.get_ylabel()
    assert ax.get_xlabel().startswith("detector_image_y") and "columns" in ax.get_xlabel()
    assert f"frame 2 at energy {events[2]['energy_position']:g} eV" in ax.get_title()
    assert "mixes" not in ax.get_title()


def test_mean_over_an_energy_scan_says_it_mixes(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        uid, _, frames = write_rsoxs(w, T0)  # 285 .. 289 eV
    fig = plot_run(open_run_dataset(path, uid))
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), frames.mean(0))
    title = ax.get_title()
    assert "mean of 5 frames at energy 285-289 eV" in title and "(mixes energies)" in title


def test_frame_titles_name_energy_and_polarization(demo_db: Path) -> None:
    uid = _runs(demo_db, "en_scan")[0]  # 8 energies at 0 deg, then at 90 deg
    ds = open_run_dataset(demo_db, uid)
    energy, pol = ds.energy_position.values, ds.polarization_position.values
    k = int(np.flatnonzero(pol == 90.0)[2])
    title = plot_run(ds, frame=k).axes[0].get_title()
    assert f"frame {k} at energy {energy[k]:g} eV, polarization 90 deg" in title and "mixes" not in title
    title = plot_run(ds).axes[0].get_title()
    assert f"energy {energy.min():g}-{energy.max():g} eV, polarization 0-90 deg" in title
    assert "(mixes energies and polarizations)" in title
    one = ds.isel(time=(energy == 285.3) & (pol == 0.0))  # a single energy: nothing mixed
    assert "mixes" not in plot_run(one).axes[0].get_title()


def test_grid_scan_is_a_map_over_its_motors(demo_db: Path) -> None:
    (uid,) = _runs(demo_db, "grid_scan")
    ds = open_run_dataset(demo_db, uid)
    assert grid_axes(ds) == ("sam_x_position", "sam_y_position")
    ax = plot_run(ds).axes[0]
    x, y = ds.sam_x_position.values, ds.sam_y_position.values
    ux, uy = np.unique(x), np.unique(y)
    assert (ux.size, uy.size) == (6, 5)  # the demo's grid: 6 x 5 points
    expected = np.full((uy.size, ux.size), np.nan)
    for xi, yi, v in zip(x, y, ds.photodiode.values / ds.i0.values):
        expected[np.searchsorted(uy, yi), np.searchsorted(ux, xi)] = v
    im = ax.images[0]
    np.testing.assert_allclose(im.get_array(), expected)  # rows: sam_y (vertical), columns: sam_x
    assert im.origin == "lower" and im.get_extent()[2] < im.get_extent()[3]
    assert ax.get_xlabel() == "sam_x_position [mm]" and ax.get_ylabel() == "sam_y_position [mm]"
    assert "map over sam_x_position and sam_y_position at energy 285.3 eV" in ax.get_title()
    assert _colorbar_label(ax) == "photodiode / i0"


def _colorbar_label(ax) -> str:  # noqa: ANN001 - a matplotlib Axes
    cax = [a for a in ax.figure.axes if a is not ax][0]
    return cax.get_ylabel()


def test_spectrum_and_non_grid_runs_stay_curves(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        uid, events = write_nexafs(w, T0)
    ds = open_run_dataset(path, uid)
    assert grid_axes(ds) is None
    ax = plot_run(ds).axes[0]
    assert not ax.images and ax.get_xlabel() == "energy_position [eV]"
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_xdata(), [e["energy_position"] for e in events])
    np.testing.assert_allclose(line.get_ydata(), [e["photodiode"] / e["i0"] for e in events])
    with pytest.raises(NothingToPlotError):
        plot_run(open_run_dataset(path, uid, "baseline").isel(time=slice(0, 0)))


def test_plots_tell_the_truth(demo_db: Path, tmp_path: Path) -> None:
    from intake_resonance import RunSet

    runs = RunSet(demo_db)
    nexafs = runs.open(runs.narrow(plan_name="nexafs", sample="PS").key(0))
    ax = plot_run(nexafs).axes[0]
    assert ax.get_ylabel() == "photodiode / i0 (a ratio, not edge-normalised)"
    baseline = plot_run(runs.open(runs.narrow(plan_name="nexafs").key(0), "baseline"))
    units = {a.get_ylabel().rsplit("[", 1)[-1] for a in baseline.axes}
    assert len(baseline.axes) == len(units) >= 2 and {"mA]", "mm]"} <= units  # one axis per unit
    lines = [line.get_label() for a in baseline.axes for line in a.get_lines()]
    assert any(label.startswith("beam_current") for label in lines) and any(label.startswith("sam_x_position") for label in lines)
    open_run = runs.narrow(status=None).key(-1)
    aborted = runs.narrow(status="aborted").key(0)
    assert "(open: still being written)" in plot_run(runs.open(open_run)).axes[0].get_title()
    assert "(aborted)" in plot_run(runs.open(aborted)).axes[0].get_title()
    assert "(" not in plot_run(nexafs).axes[0].get_title().splitlines()[0]  # a finished run says nothing more
    baseline.savefig(tmp_path / "baseline.png")
