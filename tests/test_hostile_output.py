"""The CLI never writes into, over or around a beamtime: export and plot outputs are checked, links resolved."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import T0, write_rsoxs
from hostile import beamtime_digest, cli_refuses

from intake_resonance.tools.writer import BeamtimeWriter


@pytest.fixture
def bt(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "data.zarr" / "beamtime.db"  # a folder that looks like a store holds the beamtime
    path.parent.mkdir()
    with BeamtimeWriter(path) as w:
        uid = write_rsoxs(w, T0)[0]
    with BeamtimeWriter(tmp_path / "other.db") as w:
        write_rsoxs(w, T0)
    return path, uid


def _outputs(path: Path, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    store = path.with_suffix(".zarr")
    (tmp_path / "link.nc").symlink_to(store / "evil.nc")
    return {
        "inside the store": (store / "runs" / "x.nc", "inside the Zarr store"),
        "the store": (store, "inside the Zarr store"),  # data.zarr holds it
        "a link into the store": (tmp_path / "link.nc", "inside the Zarr store"),
        "the folder holding the beamtime": (path.parent, "over the beamtime"),
        "another beamtime's store": (tmp_path / "other.zarr", "Zarr store of beamtime"),
    }


@pytest.mark.parametrize("force", [False, True])
def test_export_refuses(bt: tuple[Path, str], tmp_path: Path, force: bool) -> None:
    path, uid = bt
    before = beamtime_digest(path, tmp_path / "other.db", tmp_path / "other.zarr")
    for out, words in _outputs(path, tmp_path).values():
        cli_refuses("export", path, uid, "-o", out, "-q", *(["--force"] if force else []), words=(words,))
    assert beamtime_digest(path, tmp_path / "other.db", tmp_path / "other.zarr") == before


def test_plot_refuses(bt: tuple[Path, str], tmp_path: Path) -> None:
    path, uid = bt
    store = path.with_suffix(".zarr")
    before = beamtime_digest(path)
    (tmp_path / "link.png").symlink_to(store / "evil.png")
    for out in (store / "x.png", tmp_path / "link.png", store / "runs" / uid / "x.png"):
        cli_refuses("plot", path, uid, "-o", out, words=("inside the Zarr store",))
    assert beamtime_digest(path) == before
