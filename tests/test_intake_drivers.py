"""Intake drivers: YAML, ordering, lookup, search, tables, reload, folders and pickling."""

from __future__ import annotations

import multiprocessing as mp
import pickle
import textwrap

import intake
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import T0, write_nexafs, write_rsoxs

from intake_resonance.beamtime.errors import BeamtimeNotFoundError, RunNotFoundError
from intake_resonance.datasets.open import open_run_dataset
from intake_resonance.faces.intake_drivers import BeamtimeCatalog, BeamtimesCatalog, RunSource
from intake_resonance.tools.writer import BeamtimeWriter


@pytest.fixture
def five(tmp_path):
    """Five runs with known plans, samples, operators and statuses."""
    path = tmp_path / "data" / "bt.db"
    uids = []
    with BeamtimeWriter(path, seed=3) as w:
        uids.append(write_nexafs(w, T0, sample="PS")[0])  # alice, success
        uids.append(write_rsoxs(w, T0 + 3600, sample="P3HT")[0])  # bob
        uids.append(write_nexafs(w, T0 + 86400, sample="PMMA")[0])
        u = w.open_run("nexafs", sample="PS", time=T0 + 90000, operator="carol", metadata={"edge": "N", "n": 3})
        w.open_stream("primary", {}, time=T0 + 90000)
        w.write_event({"i0": 1.0}, time=T0 + 90001)
        w.close_run("aborted", time=T0 + 90002)
        uids.append(u)
        uids.append(w.open_run("scan", sample=None, time=T0 + 95000, metadata={"edge": "C"}))
        w.close()
    return path, uids


def test_open_via_intake_and_order(five):
    path, uids = five
    cat = intake.open_resonance_beamtime(str(path))
    assert isinstance(cat, BeamtimeCatalog)
    assert list(cat) == uids and len(cat) == 5
    assert cat[-1].uid == uids[-1] and cat[0].uid == uids[0]
    assert cat[np.int64(1)].uid == uids[1] and cat[np.int32(-2)].uid == uids[3]
    assert cat[uids[2]].uid == uids[2]
    with pytest.raises(IndexError, match="out of range"):
        cat[5]
    with pytest.raises(TypeError):
        cat[True]


def test_uid_prefixes(five, tmp_path):
    path, uids = five
    cat = BeamtimeCatalog(str(path))
    assert cat[uids[1][:6]].uid == uids[1]
    assert cat[uids[1][:6].upper()].uid == uids[1]
    with pytest.raises(KeyError, match="no run"):
        cat["ffffffffffff"]
    with pytest.raises(KeyError, match="too short"):
        cat[uids[1][:3]]
    # an ambiguous prefix lists its matches
    p2 = tmp_path / "amb.db"
    with BeamtimeWriter(p2) as w:
        for k, u in enumerate(["abcdef01" + "0" * 24, "abcdef02" + "0" * 24]):
            w.open_run("scan", time=T0 + k, uid=u)
            w.close_run(time=T0 + k + 1)
    with pytest.raises(RunNotFoundError, match="ambiguous") as err:
        BeamtimeCatalog(str(p2))["abcdef0"]
    assert "abcdef01" in str(err.value) and "abcdef02" in str(err.value)


def test_run_source_matches_engine(five):
    path, uids = five
    src = BeamtimeCatalog(str(path))[uids[1]]
    assert isinstance(src, RunSource) and src.container == "xarray"
    lazy = src.to_dask()
    xr.testing.assert_identical(lazy, xr.open_dataset(path, engine="resonance", group=uids[1], chunks={}))
    loaded = src.read()
    assert not hasattr(loaded.detector_image.data, "dask")
    np.testing.assert_array_equal(loaded.detector_image.values, lazy.detector_image.values)
    meta = src.discover()["metadata"]
    assert meta["plan_name"] == "rsoxs" and meta["dims"]["time"] == 5
    assert src.describe()["args"]["uid"] == uids[1]
    assert src.streams() == ["primary"]
    other = RunSource(str(path), uids[0], stream="baseline")
    assert other.read().beam_current.values.tolist() == [500.1]
    assert set(RunSource(str(path), uids[0]).to_datatree().children) == {"baseline", "primary"}
    one = src.to_dask(chunks=1)  # chunks per call, as the engine and open_run_dataset take them
    assert one.detector_image.chunks[0] == (1,) * 5 and src.to_dask().detector_image.chunks == lazy.detector_image.chunks
    xr.testing.assert_identical(one, xr.open_dataset(path, engine="resonance", group=uids[1], chunks={}, frame_chunks=1))
    assert RunSource(str(path), uids[1], chunks=2).to_dask().detector_image.data.chunks[0] == (2, 2, 1)


def test_to_dataframe_values(five):
    path, uids = five
    df = BeamtimeCatalog(str(path)).to_dataframe()
    assert list(df.columns) == [
        "uid", "plan_name", "sample", "time_start", "time_stop", "exit_status",
        "num_events", "stream_events", "frames", "operator",
    ]
    assert df.uid.tolist() == uids
    assert df.plan_name.tolist() == ["nexafs", "rsoxs", "nexafs", "nexafs", "scan"]
    assert df["sample"].tolist()[:4] == ["PS", "P3HT", "PMMA", "PS"] and pd.isna(df["sample"].iloc[4])
    assert df.time_start.iloc[0] == pd.Timestamp(T0, unit="s", tz="UTC")
    assert pd.isna(df.time_stop.iloc[4]) and pd.isna(df.exit_status.iloc[4])
    assert df.num_events.tolist() == [9, 5, 9, 1, 0]
    assert df.stream_events.tolist() == [8, 5, 8, 1, 0] and df.frames.tolist() == [0, 5, 0, 0, 0]
    assert df.operator.tolist()[:4] == ["alice", "bob", "alice", "carol"]


def test_counts_agree_everywhere_for_open_and_closed_runs(tmp_path):
    """num_events (all streams), the stream's events and its frames: one number on every face."""
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        nexafs, primary = write_nexafs(w, T0, n=7)  # 1 baseline + 7 primary
        rsoxs, _, frames = write_rsoxs(w, T0 + 100, n=4)
        live = w.open_run("rsoxs", sample="PS", time=T0 + 200)  # never closed: runs.num_events stays 0
        w.open_stream("baseline", {"beam_current": {"dtype": "number"}}, time=T0 + 200)
        w.write_event({"beam_current": 500.0}, time=T0 + 200.5)
        w.open_stream("primary", {"energy_position": {"dtype": "number"}, "detector_image": {"dtype": "int32", "external": True}},
                      time=T0 + 201)
        for i in range(3):
            ev = w.write_event({"energy_position": 280.0 + i}, time=T0 + 202 + i)
            w.write_image(ev, "detector_image", frames[i])
        w.close()
    written = {nexafs: (1 + len(primary), len(primary), 0), rsoxs: (4, 4, 4), live: (4, 3, 3)}
    cat = BeamtimeCatalog(str(path))
    df = cat.to_dataframe().set_index("uid")
    for uid, (total, events, n_frames) in written.items():
        assert tuple(df.loc[uid, ["num_events", "stream_events", "frames"]]) == (total, events, n_frames)
        meta = cat[uid].metadata
        assert (meta["num_events"], meta["stream_events"], meta["frames"]) == (total, events, n_frames)
        ds = cat[uid].to_dask()
        assert ds.attrs["num_events"] == total and ds.sizes["time"] == events
        assert sum(v.shape[0] for v in ds.data_vars.values() if v.ndim == 3) == n_frames
    from intake_resonance.faces.facade import Catalog

    with Catalog(path) as c:  # the beamline's API keeps its column: 0 until the run closes
        assert c[live].num_events == 0 and c[nexafs].num_events == 1 + len(primary)


@pytest.mark.parametrize("lookup_cost", [0, 10**9])  # spans with fallback / one counting pass
def test_counts_follow_the_events_not_the_column(tmp_path, monkeypatch, lookup_cost):
    """A gap in seq_num or a wrong runs.num_events: the committed events are counted, by either path."""
    from intake_resonance.beamtime.records import summary

    monkeypatch.setattr(summary, "_LOOKUP_COST", lookup_cost)
    import sqlite3

    from intake_resonance.beamtime import records
    from intake_resonance.beamtime.format import Database

    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        gap, _ = write_nexafs(w, T0, n=6)  # 1 baseline + 6 primary
        wrong, _ = write_nexafs(w, T0 + 100, n=4)  # 1 + 4
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM events WHERE seq_num = 4 AND stream_uid IN (SELECT uid FROM streams WHERE run_uid = ?)", (gap,))
    conn.execute("UPDATE runs SET num_events = num_events - 1 WHERE uid = ?", (gap,))  # spans still add up to 7
    conn.execute("UPDATE runs SET num_events = 99 WHERE uid = ?", (wrong,))
    conn.commit()
    conn.close()
    with Database(path) as db:
        table = records.counts_table(db)
        for uid, events in ((gap, {"baseline": 1, "primary": 5}), (wrong, {"baseline": 1, "primary": 4})):
            assert table[uid].events == records.run_counts(db, uid).events == events


def test_times_one_convention(five):
    """ISO 8601 UTC text in entry metadata and Dataset attrs; datetime64[ns, UTC] in the runs table."""
    path, uids = five
    cat = BeamtimeCatalog(str(path))
    df = cat.to_dataframe()
    assert str(df.time_start.dtype) == str(df.time_stop.dtype) == "datetime64[ns, UTC]"
    starts = [T0, T0 + 3600, T0 + 86400, T0 + 90000, T0 + 95000]
    assert df.time_start.tolist() == [pd.Timestamp(t, unit="s", tz="UTC") for t in starts]
    assert df.time_stop.iloc[3] == pd.Timestamp(T0 + 90002, unit="s", tz="UTC") and pd.isna(df.time_stop.iloc[4])
    for uid, t in zip(uids, starts):
        meta, attrs = cat[uid].metadata, cat[uid].to_dask().attrs
        iso = pd.Timestamp(t, unit="s", tz="UTC").isoformat()
        assert meta["time_start"] == attrs["time_start"] == iso and iso.endswith("+00:00")
        assert pd.Timestamp(meta["time_start"]) == df.set_index("uid").time_start[uid]
    assert cat[uids[3]].metadata["time_stop"] == cat[uids[3]].to_dask().attrs["time_stop"] == "2026-03-06T09:40:02+00:00"
    assert cat[uids[4]].metadata["time_stop"] is None and "time_stop" not in cat[uids[4]].to_dask().attrs


def test_search_criteria_and_chains(five):
    path, uids = five
    cat = BeamtimeCatalog(str(path))
    assert list(cat.search(plan_name="nexafs")) == [uids[0], uids[2], uids[3]]
    assert list(cat.search(sample="PS")) == [uids[0], uids[3]]
    assert list(cat.search(exit_status="aborted")) == [uids[3]]
    assert list(cat.search(exit_status=None)) == [uids[4]]
    assert list(cat.search(operator="bob")) == [uids[1]]
    assert list(cat.search(since="2026-03-06")) == [uids[2], uids[3], uids[4]]
    assert list(cat.search(until=pd.Timestamp(T0 + 3600, unit="s"))) == [uids[0]]
    assert list(cat.search(edge="N")) == [uids[3]] and list(cat.search(n=3)) == [uids[3]]
    assert list(cat.search(metadata={"edge": "C"})) == [uids[0], uids[1], uids[2], uids[4]]
    assert list(cat.search(plan_name=["rsoxs", "scan"])) == [uids[1], uids[4]]
    assert list(cat.search("carol")) == [uids[3]]
    chained = cat.search(plan_name="nexafs").search(sample="PS").search(since=T0 + 1)
    assert isinstance(chained, BeamtimeCatalog) and list(chained) == [uids[3]]
    assert chained.to_dataframe().uid.tolist() == [uids[3]]
    assert chained[-1].uid == uids[3]
    with pytest.raises(KeyError):
        chained[uids[1]]  # exists in the beamtime, not in this search
    # an injection attempt is a value like any other: it matches nothing
    for evil in ["x' OR '1'='1", "nexafs\"; DROP TABLE runs; --", "%", "_"]:
        assert list(cat.search(plan_name=evil)) == []
        assert list(cat.search(evil)) == []
    assert len(cat) == 5


def _write_late_run(path: str) -> None:
    with BeamtimeWriter(path) as w:
        w.open_run("late", time=T0 + 10**6)
        w.open_stream("primary", {}, time=T0 + 10**6)
        w.write_event({"x": 1}, time=T0 + 10**6 + 1)
        w.close_run(time=T0 + 10**6 + 2)


def test_runs_written_by_another_process_are_seen_at_once(five):
    path, uids = five
    cat = BeamtimeCatalog(str(path), ttl=3600)
    assert len(cat) == 5
    proc = mp.get_context("spawn").Process(target=_write_late_run, args=(str(path),))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    assert len(cat) == 6  # whatever the ttl: every call sees the newest commit
    assert cat[-1].to_dask().attrs["plan_name"] == "late" == cat.to_dataframe().plan_name.iloc[-1]
    cat.reload()
    assert len(cat) == 6


def test_yaml_catalog_dir_and_parameters(five, tmp_path, monkeypatch):
    path, uids = five
    (tmp_path / "cat.yaml").write_text(textwrap.dedent("""
        sources:
          bt:
            driver: resonance_beamtime
            args:
              path: "{{ CATALOG_DIR }}/data/bt.db"
          nexafs_only:
            driver: resonance_beamtime
            args:
              path: "{{ CATALOG_DIR }}/data/bt.db"
              criteria: {plan_name: nexafs}
          folder:
            driver: resonance_beamtimes
            parameters:
              where: {description: folder, type: str, default: "env(TEST_RESONANCE_DIR)"}
            args: {path: "{{ where }}"}
          one:
            driver: resonance_run
            args: {path: "{{ CATALOG_DIR }}/data/bt.db", uid: "%s", stream: baseline}
    """ % uids[0]))
    monkeypatch.setenv("TEST_RESONANCE_DIR", str(path.parent))
    cat = intake.open_catalog(str(tmp_path / "cat.yaml"))
    assert list(cat.bt) == uids
    assert list(cat.nexafs_only) == [uids[0], uids[2], uids[3]]
    assert list(cat.folder) == ["bt"] and list(cat.folder.bt) == uids
    assert list(cat.folder(where=str(tmp_path)) ) == []
    assert cat.one.read().sam_x_position.values.tolist() == [1.25]


def test_folder_catalog(tmp_path):
    folder = tmp_path / "beamtimes"
    with BeamtimeWriter(folder / "zeta.db") as w:
        write_nexafs(w, T0)
    with BeamtimeWriter(folder / "alpha.db") as w:
        write_rsoxs(w, T0)
    cat = intake.open_resonance_beamtimes(str(folder))
    assert isinstance(cat, BeamtimesCatalog) and list(cat) == ["alpha", "zeta"]
    assert cat.alpha[-1].to_dask().attrs["plan_name"] == "rsoxs"
    with BeamtimeWriter(folder / "mid.db") as w:
        write_nexafs(w, T0)
    assert cat["mid"][0].to_dask().attrs["plan_name"] == "nexafs"  # found without an explicit reload
    cat.reload()
    assert list(cat) == ["alpha", "mid", "zeta"]
    with pytest.raises(KeyError, match="no beamtime named 'nope'"):
        cat["nope"]
    with pytest.raises(BeamtimeNotFoundError):
        BeamtimesCatalog(str(tmp_path / "missing"))
    empty = BeamtimesCatalog("")  # a YAML template opened without folder: the error comes on use
    with pytest.raises(BeamtimeNotFoundError, match="RESONANCE_DATA"):
        list(empty)


def test_pickling_sources_and_catalogs(five):
    path, uids = five
    cat = BeamtimeCatalog(str(path)).search(plan_name="rsoxs")
    again = pickle.loads(pickle.dumps(cat))
    assert list(again) == [uids[1]]
    src = pickle.loads(pickle.dumps(cat[0]))
    np.testing.assert_array_equal(
        src.read().detector_image.values, open_run_dataset(path, uids[1]).detector_image.values
    )


def test_entries_are_lazy(tmp_path):
    path = tmp_path / "many.db"
    with BeamtimeWriter(path) as w:
        for k in range(300):
            w.open_run("scan", time=T0 + k)
            w.close_run(time=T0 + k + 0.5)
    cat = BeamtimeCatalog(str(path))
    assert len(list(cat)) == 300
    entries = cat._entries
    assert sum(entries.made(u) is not None for u in entries) == 0
    cat[-1]
    assert [u for u in entries if entries.made(u) is not None] == [list(entries)[-1]]


def _layout_of(ds: xr.Dataset) -> dict:
    return {
        **ds.attrs,
        "dims": dict(ds.sizes),
        "data_vars": {k: list(v.dims) for k, v in ds.data_vars.items()},
        "coords": list(ds.coords),
    }


def test_discover_reads_no_event_table(five, tmp_path, monkeypatch):
    path, uids = five
    odd = tmp_path / "odd.db"
    with BeamtimeWriter(odd, seed=1) as w:
        # a 2-D list field, a field named like a coordinate, an undeclared field
        w.open_run("scan", time=T0)
        w.open_stream("primary", {"spectrum": {"dtype": "array", "shape": [3]}, "time": {"dtype": "number"}}, time=T0)
        for k in range(4):
            w.write_event({"spectrum": [k, k + 1.5, 2.0], "time": 0.5 * k, "extra": "x"}, time=T0 + k + 1)
        w.close_run(time=T0 + 9)
    odd_uid = BeamtimeCatalog(str(odd)).to_dataframe().uid.iloc[0]
    cases = [(path, u, "primary") for u in uids] + [(path, uids[0], "baseline"), (odd, odd_uid, "primary")]
    expected = [_layout_of(open_run_dataset(p, u, s)) for p, u, s in cases]

    import intake_resonance.beamtime.records as records_mod
    import intake_resonance.datasets.build as build_mod

    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise AssertionError("discover() read the event table or built the Dataset")

    monkeypatch.setattr(records_mod, "event_table", refuse)
    monkeypatch.setattr(build_mod, "build_run", refuse)
    for (p, u, s), want in zip(cases, expected):
        meta = RunSource(str(p), u, stream=s).discover()["metadata"]
        assert meta == want, (u, s)
    assert calls == []
    # to_dask() still hands out the Dataset (the patched builder is reached)
    with pytest.raises(AssertionError, match="discover"):
        RunSource(str(path), uids[1]).to_dask()
    assert len(calls) == 1
