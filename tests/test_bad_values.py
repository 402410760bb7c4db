"""Columns holding the wrong kind of value (hand-edited files) give our errors on every face."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import intake
import pytest
import xarray as xr
from conftest import T0, write_rsoxs

from intake_resonance.beamtime.errors import BeamtimeDataError, FrameMismatchError
from intake_resonance.faces.facade import Catalog
from intake_resonance.tools.writer import BeamtimeWriter


@pytest.fixture
def run(tmp_path):
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        uid, _, _ = write_rsoxs(w, T0)
    return path, uid


def _edit(path, sql, *params):
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(sql, params)


def test_text_in_event_time_names_the_event(run):
    path, uid = run
    _edit(path, "UPDATE events SET time = 'noon' WHERE seq_num = 3")
    with pytest.raises(BeamtimeDataError, match=r"seq_num 3.*events\.time must be a number, found 'noon'") as err:
        xr.open_dataset(path, engine="resonance", group=uid)
    assert str(path) in str(err.value) and uid in str(err.value)
    with Catalog(path) as cat, pytest.raises(BeamtimeDataError, match="events.time"):
        cat[uid].table()


def test_text_in_index_in_stack(run):
    path, uid = run
    _edit(path, "UPDATE image_refs SET index_in_stack = 'two' WHERE index_in_stack = 2")
    with pytest.raises(FrameMismatchError, match=r"seq_num 3.*must be integers, found \('two', 6, 5\)"):
        intake.open_resonance_beamtime(str(path))[uid].to_dask()
    with Catalog(path) as cat, pytest.raises(FrameMismatchError, match="detector_image"):
        cat[uid].images()


def test_text_in_run_start(run):
    path, uid = run
    _edit(path, "UPDATE runs SET time_start = 'monday' WHERE uid = ?", uid)
    cat = intake.open_resonance_beamtime(str(path))
    assert list(cat) == [uid]  # listing needs no value
    with pytest.raises(BeamtimeDataError, match=rf"run {uid}: runs.time_start must be a number, found 'monday'"):
        cat.to_dataframe()
    with pytest.raises(BeamtimeDataError, match="time_start"):
        cat[uid].to_dask()
    with Catalog(path) as c, pytest.raises(BeamtimeDataError, match="time_start"):
        c.recent()


def test_same_seq_num_in_two_streams_is_not_a_duplicate_frame(tmp_path):
    """seq_num is unique per stream only; a hand-made file may repeat it across streams."""
    import numpy as np
    from conftest import IMAGE_KEYS

    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        uid = w.open_run("rsoxs", time=T0)
        w.open_stream("dark", IMAGE_KEYS, time=T0)
        ev = w.write_event({"exposure": 1.0}, time=T0 + 1)
        w.write_image(ev, "detector_image", np.zeros((6, 5), np.int32))
        w.open_stream("primary", IMAGE_KEYS, time=T0 + 2)
        ev = w.write_event({"exposure": 1.0}, time=T0 + 3)
        w.write_image(ev, "detector_image", np.ones((6, 5), np.int32))
        w.close_run(time=T0 + 4)
    _edit(path, "UPDATE events SET seq_num = 1")
    with Catalog(path) as cat:
        images = cat[uid].images()
        assert len(images) == 2 and sorted(images[:].sum(axis=(1, 2)).tolist()) == [0, 30]
