"""records.py: SQL rows to plain values, compared with what the writer wrote."""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import BASELINE_KEYS, IMAGE_KEYS, NEXAFS_KEYS, T0, write_nexafs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake_resonance.beamtime import records
from intake_resonance.beamtime.format import Database
from intake_resonance.beamtime.records import MISSING
from intake_resonance.tools.writer import BeamtimeWriter


def test_missing_is_a_picklable_singleton() -> None:
    assert pickle.loads(pickle.dumps(MISSING)) is MISSING
    assert type(MISSING)() is MISSING and repr(MISSING) == "MISSING"
    assert MISSING is not None


def test_decode_json(beamtime) -> None:
    db = Database(beamtime.path)
    assert records.decode_json(None, {}, db, "x") == {}
    assert records.decode_json("", [], db, "x") == []
    assert records.decode_json(b'{"a": [1, 2]}', None, db, "x") == {"a": [1, 2]}
    # Python's json.dumps spells non-finite floats NaN/Infinity
    value = records.decode_json('{"a": NaN, "b": -Infinity}', None, db, "x")
    assert math.isnan(value["a"]) and value["b"] == -math.inf


# -------------------------------------------------------------------- runs/samples
def test_runs_and_samples(beamtime) -> None:
    db = Database(beamtime.path)
    runs = records.list_runs(db)
    assert [r.uid for r in runs] == [beamtime.uids["nexafs"], beamtime.uids["rsoxs"]]
    nexafs = runs[0]
    assert (nexafs.plan_name, nexafs.time_start, nexafs.time_stop, nexafs.exit_status) == ("nexafs", T0, T0 + 9, "success")
    assert (nexafs.num_events, nexafs.operator, nexafs.sample_name) == (9, "alice", "PS")
    assert nexafs.metadata(db) == {"edge": "C", "purpose": "ref"}
    assert records.get_run(db, beamtime.uids["rsoxs"]) == runs[1]
    assert records.get_run(db, "0" * 32) is None
    sample = records.get_sample(db, nexafs.sample_id)
    assert sample == records.SampleRecord(nexafs.sample_id, "PS", None, None, [], None, {})
    assert records.get_sample(db, None) is None
    assert records.match_uids(db, beamtime.uids["rsoxs"][:8]) == [beamtime.uids["rsoxs"]]
    assert records.match_uids(db, "%") == [] and records.match_uids(db, "_") == []


def test_run_still_open_and_sample_deleted(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    w = BeamtimeWriter(path).open()
    sid = w.add_sample("PS", formula="C8H8", serial="A1", tags=["ref", "thin"], beamline_pos="3", extra={"t": 5})
    done, _ = write_nexafs(w, T0, n=2, sample="PS")
    w.connection.execute("DELETE FROM samples WHERE id = ?", (sid,))  # FK is SET NULL
    w.connection.commit()
    live = w.open_run("scan", sample=None, time=T0 + 50, metadata={"nested": {"k": [1, 2]}})
    w.open_stream("primary", NEXAFS_KEYS, time=T0 + 50)
    w.write_event({"i0": 1.0}, time=T0 + 51)  # not committed: invisible
    db = Database(path)
    run = records.get_run(db, live)
    assert (run.time_stop, run.exit_status, run.num_events, run.sample_id, run.sample_name) == (None, None, 0, None, None)
    assert run.metadata(db) == {"nested": {"k": [1, 2]}}
    assert len(records.stream_events(db, live, "primary")) == 0
    assert records.get_run(db, done).sample_id is None
    # a sample_id pointing at a row that no longer exists (foreign keys off;
    # the pragma is a no-op inside the open transaction, so commit first)
    w.connection.commit()
    assert records.stream_events(db, live, "primary").columns == {"i0": [1.0]}
    w.connection.execute("PRAGMA foreign_keys = OFF")
    w.connection.execute("UPDATE runs SET sample_id = 999 WHERE uid = ?", (done,))
    w.connection.commit()
    gone = records.get_run(db, done)
    assert gone.sample_id == 999 and gone.sample_name is None
    assert records.get_sample(db, 999) is None
    w.close()
    db.close()


def test_sample_columns_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        sid = w.add_sample("PS", formula="C8H8", serial="A1", tags=["ref", "thin"], beamline_pos="3", extra={"t": 5})
        w.connection.execute("INSERT INTO samples (name, tags, extra) VALUES ('bare', NULL, NULL)")
        w.connection.commit()
    db = Database(path)
    assert records.get_sample(db, sid) == records.SampleRecord(sid, "PS", "C8H8", "A1", ["ref", "thin"], "3", {"t": 5})
    bare = records.get_sample(db, sid + 1)
    assert (bare.name, bare.tags, bare.extra) == ("bare", [], {})


def test_metadata_null_and_non_object(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        uid = w.open_run("scan", time=T0)
        w.connection.execute("UPDATE runs SET metadata = NULL")
        w.connection.commit()
    db = Database(path)
    assert records.get_run(db, uid).metadata(db) == {}


# ------------------------------------------------------------------------- streams
def test_streams_in_opening_order(beamtime) -> None:
    db = Database(beamtime.path)
    streams = records.list_streams(db, beamtime.uids["nexafs"])
    assert [(s.name, s.data_keys, s.time_created) for s in streams] == [
        ("baseline", BASELINE_KEYS, T0),
        ("primary", NEXAFS_KEYS, T0 + 0.2),
    ]
    assert records.list_streams(db, "nope") == []
    assert records.stream_events(db, beamtime.uids["nexafs"], "nope").columns == {}
    assert records.stream_events(db, "nope", "primary").seq_num.dtype == np.int64


def test_events_mixed_values(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    events = [
        {"a": 1, "b": "x", "flag": True, "spec": [1.0, 2.0]},
        {"a": None, "flag": False, "spec": [3.0, 4.0], "late": 1.5},
        {"b": "y", "a": 2.5, "spec": None},
    ]
    with BeamtimeWriter(path) as w:
        uid = w.open_run("scan", time=T0)
        w.open_stream("primary", {}, time=T0)
        for i, e in enumerate(events):
            w.write_event(e, time=T0 + i)
    ev = records.stream_events(Database(path), uid, "primary")
    assert list(ev.columns) == ["a", "b", "flag", "spec", "late"]  # order of first appearance
    assert ev.columns["a"] == [1, None, 2.5]
    assert ev.columns["b"] == ["x", MISSING, "y"]
    assert ev.columns["flag"] == [True, False, MISSING]
    assert type(ev.columns["flag"][0]) is bool
    assert ev.columns["spec"] == [[1.0, 2.0], [3.0, 4.0], None]
    assert ev.columns["late"] == [MISSING, 1.5, MISSING]
    assert ev.seq_num.tolist() == [1, 2, 3] and ev.time.tolist() == [T0, T0 + 1, T0 + 2]
    ev_none = records.stream_events(Database(path), uid, "primary", missing=None)
    assert ev_none.columns["late"] == [None, 1.5, None]


def test_events_nan_blob_and_big_ints(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        uid = w.open_run("scan", time=T0)
        w.open_stream("primary", {}, time=T0)
        w.write_event({}, time=T0, raw_data='{"a": NaN, "b": 1}')
        w.write_event({}, time=T0 + 1, raw_data='{"a": Infinity, "b": 2}')
        e3 = w.write_event({"a": 3.0, "b": 3}, time=T0 + 2)
        # a hand-made file may keep the JSON as a BLOB
        w.connection.execute("UPDATE events SET data = CAST(data AS BLOB) WHERE uid = ?", (e3,))
    ev = records.stream_events(Database(path), uid, "primary")
    a = ev.columns["a"]
    assert math.isnan(a[0]) and a[1] == math.inf and a[2] == 3.0
    assert ev.columns["b"] == [1, 2, 3]


def test_events_ordered_by_seq_num_not_insertion(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        uid = w.open_run("scan", time=T0)
        w.open_stream("primary", {}, time=T0)
        for i in range(4):
            w.write_event({"i": i}, time=T0 + i)
        w.connection.execute("UPDATE events SET seq_num = 10 - seq_num")  # 9, 8, 7, 6
    ev = records.stream_events(Database(path), uid, "primary")
    assert ev.seq_num.tolist() == [6, 7, 8, 9] and ev.columns["i"] == [3, 2, 1, 0]


# Values the beamline writes: numbers, booleans, strings, nulls; fields may be missing.
_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), max_size=3),
)
_names = st.sampled_from(["energy_position", "i0", "hos", "photodiode", "exposure", "ü name", "a.b", 'q"t'])
_events = st.lists(st.dictionaries(_names, _values, max_size=5), min_size=1, max_size=8)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=_events, split=st.integers(min_value=0, max_value=8))
def test_event_round_trip_property(tmp_path_factory: pytest.TempPathFactory, events: list[dict[str, Any]], split: int) -> None:
    path = tmp_path_factory.mktemp("prop") / "bt.db"
    split = min(split, len(events))
    with BeamtimeWriter(path) as w:
        uid = w.open_run("scan", time=T0)
        w.open_stream("baseline", {}, time=T0)
        for i, e in enumerate(events[:split]):
            w.write_event(e, time=T0 + i)
        w.open_stream("primary", {}, time=T0 + 100)
        for i, e in enumerate(events[split:]):
            w.write_event(e, time=T0 + 100 + i)
    db = Database(path)
    for name, part, first_seq, t0 in (("baseline", events[:split], 1, T0), ("primary", events[split:], split + 1, T0 + 100)):
        ev = records.stream_events(db, uid, name)
        assert ev.seq_num.tolist() == list(range(first_seq, first_seq + len(part)))
        assert ev.time.tolist() == [t0 + i for i in range(len(part))]
        keys = list(dict.fromkeys(k for e in part for k in e))
        assert list(ev.columns) == keys
        for k in keys:
            got = ev.columns[k]
            want = [e.get(k, MISSING) for e in part]
            assert len(got) == len(want)
            for g, x in zip(got, want):
                if isinstance(x, list):  # float32 values travel as float64 JSON numbers
                    assert g == pytest.approx(x)
                else:
                    assert g == x and type(g) is type(x)
    db.close()


# -------------------------------------------------------------------------- frames
def _image_run(tmp_path: Path) -> tuple[Path, str, np.ndarray, np.ndarray]:
    """A run whose 'det' field has frames for events 1, 2, 4 (not 3), stored out of
    order, and a second field 'aux' only on event 3; a baseline stream first."""
    path = tmp_path / "bt.db"
    det = np.arange(3 * 2 * 3, dtype=np.uint16).reshape(3, 2, 3)
    aux = np.full((1, 4, 4), 7, np.int64)
    with BeamtimeWriter(path) as w:
        uid = w.open_run("rsoxs", time=T0)
        w.open_stream("baseline", {}, time=T0)
        w.write_event({"x": 1}, time=T0)  # seq 1, no frames
        w.open_stream("primary", IMAGE_KEYS, time=T0)
        evs = [w.write_event({"energy_position": 280.0 + i}, time=T0 + 1 + i) for i in range(4)]  # seq 2..5
        w.write_image(evs[0], "det", det[0], index=2)
        w.write_image(evs[1], "det", det[1], index=0)
        w.write_image(evs[3], "det", det[2], index=1)
        w.write_image(evs[2], "aux", aux[0])
    return path, uid, det, aux


def test_frame_refs_with_stream(tmp_path: Path) -> None:
    path, uid, _, _ = _image_run(tmp_path)
    db = Database(path)
    assert records.image_fields(db, uid) == ["aux", "det"]
    assert records.image_fields(db, uid, "primary") == ["aux", "det"]
    assert records.image_fields(db, uid, "baseline") == []
    refs = records.frame_refs(db, uid, "det", "primary")
    assert len(refs) == 4
    assert refs.seq_num.tolist() == [2, 3, 4, 5]
    assert refs.groups == (f"runs/{uid}/det",)
    assert refs.group.tolist() == [0, 0, -1, 0]
    assert refs.index.tolist() == [2, 0, -1, 1]
    assert (refs.frame_shape, refs.dtype) == ((2, 3), "uint16")
    aux = records.frame_refs(db, uid, "aux", "primary")
    assert aux.group.tolist() == [-1, -1, 0, -1] and aux.index.tolist() == [-1, -1, 0, -1]
    assert (aux.frame_shape, aux.dtype) == ((4, 4), "int64")
    none = records.frame_refs(db, uid, "det", "baseline")
    assert none.seq_num.tolist() == [1] and none.group.tolist() == [-1] and none.frame_shape is None
    empty = records.frame_refs(db, uid, "nothing", "primary")
    assert empty.group.tolist() == [-1] * 4 and empty.dtype is None


def test_frame_refs_without_stream_only_events_with_frames(tmp_path: Path) -> None:
    path, uid, _, _ = _image_run(tmp_path)
    db = Database(path)
    refs = records.frame_refs(db, uid, "det")
    assert refs.seq_num.tolist() == [2, 3, 5]
    assert refs.index.tolist() == [2, 0, 1] and refs.group.tolist() == [0, 0, 0]
    assert len(records.frame_refs(db, uid, "nothing")) == 0


def test_image_fields_same_under_both_join_orders(tmp_path):
    """The join order picked from ``n_events`` changes the cost, never the answer."""
    from conftest import T0, write_nexafs, write_rsoxs

    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        scalar, _ = write_nexafs(w, T0)
        image, _, _ = write_rsoxs(w, T0 + 100)
    db = Database(path)
    for uid, expected in ((scalar, []), (image, ["detector_image"])):
        for n_events in (0, 10**9, None):
            assert records.image_fields(db, uid, "primary", n_events=n_events) == expected
            assert records.image_fields(db, uid, n_events=n_events) == expected
