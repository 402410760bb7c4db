"""The demo beamtime: deterministic, complete as specified, readable by our reader."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from intake_resonance.beamtime import records
from intake_resonance.beamtime.format import Database
from intake_resonance.beamtime.frames import FrameStack
from intake_resonance.tools import demo

SHAPE = (32, 32)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Database:
    path = demo.write_demo(tmp_path_factory.mktemp("demo"), frame_shape=SHAPE)
    db = Database(path)
    yield db
    db.close()


def _runs(db: Database, plan: str | None = None) -> list[records.RunRecord]:
    return [r for r in records.list_runs(db) if plan is None or r.plan_name == plan]


def _stack(db: Database, uid: str) -> FrameStack:
    return FrameStack(db.zarr_path, records.frame_refs(db, uid, "detector_image", "primary"))


def _dump(path: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(path)
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("samples", "runs", "streams", "events", "image_refs")
        }
    finally:
        conn.close()


def test_writes_db_and_store(demo_db: Database) -> None:
    assert demo_db.path.name == "demo_beamtime.db"
    assert demo_db.zarr_path.is_dir()
    assert demo_db.schema_version == 2


def test_same_seed_same_beamtime(tmp_path: Path) -> None:
    a = demo.write_demo(tmp_path / "a", seed=3, frame_shape=SHAPE)
    b = demo.write_demo(tmp_path / "b", seed=3, frame_shape=SHAPE)
    rows_a, rows_b = _dump(a), _dump(b)
    assert rows_a == rows_b  # uids, times, event data, image references
    assert len(rows_a["events"]) > 1000
    db_a, db_b = Database(a), Database(b)
    for run in _runs(db_a):
        if records.image_fields(db_a, run.uid):
            np.testing.assert_array_equal(_stack(db_a, run.uid)[:], _stack(db_b, run.uid)[:])
    c = demo.write_demo(tmp_path / "c", seed=4, frame_shape=SHAPE)
    assert {r[0] for r in _dump(c)["runs"]}.isdisjoint(r[0] for r in rows_a["runs"])


def test_runs_plans_and_statuses(demo_db: Database) -> None:
    runs = _runs(demo_db)
    assert len(runs) == 13
    assert {r.plan_name for r in runs} == {"nexafs", "rsoxs", "en_scan", "grid_scan"}
    assert sum(r.plan_name == "grid_scan" for r in runs) == 1
    statuses = [r.exit_status for r in runs]
    assert statuses.count("aborted") == 1 and statuses.count(None) == 1
    assert statuses.count("success") == 11
    assert runs[0].time_start == demo.EPOCH  # 2026-03-05 09:00 UTC
    assert 40 * 3600 < runs[-1].time_start - runs[0].time_start < 56 * 3600
    assert [r.sample_name for r in runs].count(None) == 1
    assert all(r.operator for r in runs)
    meta = runs[0].metadata(demo_db)
    assert meta["edge"] == "C" and meta["proposal"] == "ALS-12345" and meta["notes"]


def test_aborted_run_has_fewer_events(demo_db: Database) -> None:
    nexafs = _runs(demo_db, "nexafs")
    (aborted,) = [r for r in nexafs if r.exit_status == "aborted"]
    done = [r for r in nexafs if r.exit_status == "success"]
    assert 0 < aborted.num_events < min(r.num_events for r in done)
    assert len(records.stream_events(demo_db, aborted.uid, "primary")) == aborted.num_events - 2


def test_reused_sample_name_is_one_row(demo_db: Database) -> None:
    ps = [r for r in _runs(demo_db) if r.sample_name == "PS"]
    assert len(ps) == 3 and len({r.sample_id for r in ps}) == 1
    assert ps[0].time_start < demo.EPOCH + 86400 <= ps[-1].time_start  # reused on day two
    sample = records.get_sample(demo_db, ps[0].sample_id)
    assert (sample.formula, sample.serial, sample.beamline_pos) == ("C8H8", "S-0101", "A1")
    assert "thickness_nm" in sample.extra and sample.tags
    (count,) = demo_db.query("SELECT COUNT(*) FROM samples WHERE name = ?", ("PS",))[0]
    assert count == 1


def test_open_run_is_never_closed(demo_db: Database) -> None:
    (run,) = [r for r in _runs(demo_db) if r.exit_status is None]
    assert run.uid == _runs(demo_db)[-1].uid  # the newest run
    assert run.time_stop is None and run.num_events == 0
    assert len(records.stream_events(demo_db, run.uid, "primary")) > 0
    assert len(_stack(demo_db, run.uid)) > 0


def test_nexafs_peaks_at_carbon_pi_star(demo_db: Database) -> None:
    ps = [r for r in _runs(demo_db, "nexafs") if r.sample_name == "PS"]
    for run in ps:
        ev = records.stream_events(demo_db, run.uid, "primary")
        energy = np.array(ev.columns["energy_position"])
        pd, i0 = np.array(ev.columns["photodiode"]), np.array(ev.columns["i0"])
        assert energy.min() == 270 and energy.max() >= 338
        assert abs(energy[np.argmax(pd)] - 285.2) < 0.5
        ratio = pd / i0
        assert ratio[energy > 320].mean() > 3 * ratio[energy < 280].mean()  # the edge step
        assert np.all(np.diff(i0[:20]) < 0.05) and 1.0 < i0.mean() < 2.0
    keys = {s.name: s.data_keys for s in records.list_streams(demo_db, ps[0].uid)}
    assert keys["primary"]["energy_position"] == {"dtype": "number", "units": "eV", "source": "motor"}
    assert keys["primary"]["i0"]["units"] == "V"
    assert len(records.stream_events(demo_db, ps[0].uid, "baseline")) == 2
    assert "beam_current" in keys["baseline"] and "sam_th_position" in keys["baseline"]


def test_frames_shape_dtype_and_ring(demo_db: Database) -> None:
    rsoxs = [r for r in _runs(demo_db) if r.plan_name in demo.RSOXS_PLANS]
    assert len(rsoxs) == 5
    for run in rsoxs:
        fs = _stack(demo_db, run.uid)
        assert fs.shape[1:] == SHAPE and fs.dtype == np.int32
        n_events = len(records.stream_events(demo_db, run.uid, "primary"))
        assert len(fs) == n_events
        if run.exit_status == "success":
            assert 10 <= len(fs) <= 20
        keys = records.list_streams(demo_db, run.uid)[-1].data_keys["detector_image"]
        assert keys["external"] is True and keys["shape"] == list(SHAPE) and keys["dtype"] == "int32"
    # The blend's ring is brighter on the pi* resonance than below the edge.
    blend = next(r for r in rsoxs if r.sample_name == "P3HT:PCBM")
    ev = records.stream_events(demo_db, blend.uid, "primary")
    energy, exposure = np.array(ev.columns["energy_position"]), np.array(ev.columns["exposure"])
    frames = _stack(demo_db, blend.uid)[:].astype(float) - 100  # dark offset
    rate = frames.mean(axis=(1, 2)) / exposure
    assert rate[energy == 285.3][0] > 2 * rate[energy == 270.0][0]
    # The beamstop shadows the beam centre.
    cy, cx = int(0.54 * SHAPE[0]), int(0.46 * SHAPE[1])
    assert frames[:, cy, cx].max() < frames.max() / 20


def test_main_prints_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    demo.main([str(tmp_path), "--frame-shape", "32", "32"])
    out = capsys.readouterr().out
    db = Database(tmp_path / "demo_beamtime.db")
    runs = _runs(db)
    assert "runs: 13 (aborted 1, open 1, success 11)" in out
    assert all(r.uid[:8] in out for r in runs)
    assert "2026-03-05T09:00:00Z" in out
    assert "frames: 66 in 5 runs, 32x32 int32" in out
    closed = [r for r in runs if r.plan_name in demo.RSOXS_PLANS and r.exit_status == "success"][-1]
    assert f"newest RSoXS run {closed.uid[:8]} (en_scan, P3HT:PCBM, success): 12 frames" in out and "mean intensity" in out
    assert "samples: 4" in out and "P3HT:PCBM" in out
    demo.main([str(tmp_path), "--frame-shape", "32", "32"])  # rewrites in place
    assert "runs: 13 " in capsys.readouterr().out


def test_summary_counts_are_the_catalogs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """events (all streams), primary and frames: the summary, the runs table and each Dataset agree."""
    from intake_resonance.datasets.open import open_run_dataset
    from intake_resonance.faces.intake_drivers import BeamtimeCatalog

    path = demo.write_demo(tmp_path, frame_shape=(16, 16))
    demo.summarize(path)
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    cat = BeamtimeCatalog(str(path))
    df = cat.to_dataframe()
    for row in df.itertuples(index=False):
        shown = [int(v) for v in lines[row.uid[:8]][-3:]]
        assert shown == [row.num_events, row.stream_events, row.frames]
        ds = open_run_dataset(path, row.uid)
        assert ds.attrs["num_events"] == row.num_events and ds.sizes["time"] == row.stream_events
        n_frames = int(np.isfinite(ds.detector_image.values).all(axis=(1, 2)).sum()) if "detector_image" in ds else 0
        assert n_frames == row.frames
    cat.close()
    live = df.iloc[-1]  # the demo's open run: 2 baseline + 6 primary events, one frame each
    assert pd_isna(live.exit_status) and (live.num_events, live.stream_events, live.frames) == (8, 6, 6)
    rsoxs = df[df.plan_name == "rsoxs"].iloc[0]  # 2 baseline + 16 energies
    assert (rsoxs.num_events, rsoxs.stream_events, rsoxs.frames) == (18, 16, 16)


def pd_isna(value: object) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    path = demo.write_demo(tmp_path, frame_shape=SHAPE)
    other = tmp_path / "other.db"
    other.write_bytes(b"keep me")
    before = _dump(path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        demo.write_demo(tmp_path, frame_shape=SHAPE)
    assert _dump(path) == before
    (path.with_suffix(".zarr") / "stray").write_text("old")
    assert demo.write_demo(tmp_path, frame_shape=SHAPE, overwrite=True) == path
    assert _dump(path) == before  # same seed: the same beamtime again, not appended to
    assert not (path.with_suffix(".zarr") / "stray").exists()
    assert other.read_bytes() == b"keep me"
    path.unlink()  # a store without its database still counts as a beamtime
    with pytest.raises(FileExistsError):
        demo.write_demo(tmp_path, frame_shape=SHAPE)


def test_rejects_tiny_frames(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="frame_shape"):
        demo.write_demo(tmp_path, frame_shape=(4, 4))
    assert not (tmp_path / "demo_beamtime.db").exists()
