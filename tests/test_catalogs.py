"""The shipped YAML catalogs open as the README shows them, without a warning."""

from __future__ import annotations

import warnings
from pathlib import Path

import intake
import pytest

from intake_resonance.beamtime.errors import BeamtimeNotFoundError
from intake_resonance.tools.demo import write_demo

CATALOGS = Path(__file__).resolve().parent.parent / "catalogs"


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    write_demo(folder, frame_shape=(16, 16))
    return folder


def test_beamtimes_yaml_as_in_the_readme(demo_folder, monkeypatch):
    monkeypatch.delenv("RESONANCE_DATA", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # intake's "Shell command not executed" included
        cat = intake.open_catalog(str(CATALOGS / "beamtimes.yaml"))
        folder = cat.beamtimes(folder=str(demo_folder))
        assert list(folder) == ["demo_beamtime"] and folder.ttl == 60.0
        ds = folder.demo_beamtime.search(plan_name="rsoxs")[-1].to_dask()
        assert ds.attrs["plan_name"] == "rsoxs" and ds.sizes["time"] == 16
        assert cat.beamtimes(folder=str(demo_folder), ttl=5).ttl == 5.0
        with pytest.raises(BeamtimeNotFoundError, match="no folder of beamtimes given"):
            list(cat.beamtimes)  # neither folder= nor RESONANCE_DATA: a clear error on use
        folder.demo_beamtime.close()


def test_beamtimes_yaml_from_the_environment(demo_folder, monkeypatch):
    monkeypatch.setenv("RESONANCE_DATA", str(demo_folder))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cat = intake.open_catalog(str(CATALOGS / "beamtimes.yaml"))
        assert list(cat.beamtimes) == ["demo_beamtime"]
        assert len(cat.beamtimes.demo_beamtime) == 13


def test_demo_yaml_opens_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cat = intake.open_catalog(str(CATALOGS / "demo.yaml"))
        assert set(cat) >= {"demo_beamtime", "demo_folder"}
