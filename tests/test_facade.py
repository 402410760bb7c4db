"""The beamline reader's API (Catalog, Run, LazyImageSequence) against what was written."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import BASELINE_KEYS, IMAGE_KEYS, T0, write_nexafs, write_rsoxs
from pandas.testing import assert_frame_equal

from intake_resonance.beamtime.errors import (
    BeamtimeError,
    BeamtimeFormatError,
    BeamtimeNotFoundError,
    FramesMissingError,
)
from intake_resonance.faces.facade import Catalog, LazyImageSequence, Run, RunSummary, SampleMetadata
from intake_resonance.tools.writer import BeamtimeWriter


def records_table(events: list[tuple[int, float, dict[str, Any]]]) -> pd.DataFrame:
    """The slow reference: one record per event, as the beamline reader builds its table."""
    if not events:
        return pd.DataFrame(columns=pd.Index(["seq_num", "time"]))
    recs = [{"seq_num": s, "time": t, **data} for s, t, data in events]
    df = pd.DataFrame(recs)
    rest = [c for c in df.columns if c not in ("seq_num", "time")]
    return pd.DataFrame(df[["seq_num", "time", *rest]])


# ---------------------------------------------------------------- dataclasses
def test_dataclass_fields_and_defaults():
    assert [f.name for f in dataclasses.fields(RunSummary)] == [
        "uid", "plan_name", "time_start", "sample_name", "time_stop", "exit_status",
    ]
    assert [f.name for f in dataclasses.fields(SampleMetadata)] == [
        "name", "formula", "serial", "tags", "beamline_pos", "extra", "id",
    ]
    assert RunSummary("u", "scan", 1.0) == RunSummary("u", "scan", 1.0, None, None, None)
    a, b = SampleMetadata("PS"), SampleMetadata("PS")
    assert (a.tags, a.extra, a.id, a.formula) == ([], {}, None, None)
    a.tags.append("x")
    assert b.tags == []  # no shared mutable default


# --------------------------------------------------------------- listing runs
@pytest.fixture
def many_runs(tmp_path: Path) -> tuple[Path, list[tuple[str, float, str | None]]]:
    """Six runs started out of time order, with reused, absent and distinct samples."""
    path = tmp_path / "many.db"
    plan = [(T0 + 30, "PS"), (T0 + 10, "P3HT"), (T0 + 50, None), (T0 + 20, "PS"), (T0 + 40, "PS"), (T0 + 0, "P3HT")]
    written = []
    with BeamtimeWriter(path, seed=1) as w:
        w.add_sample("PS", formula="C8H8", serial="S1", tags=["polymer", "ref"], beamline_pos="A3", extra={"t_nm": 50})
        for i, (t, sample) in enumerate(plan):
            uid = w.open_run(f"plan{i}", sample=sample, time=t)
            w.close_run("success" if i % 2 else "aborted", time=t + 5)
            written.append((uid, t, sample))
    return path, written


def test_recent_orders_newest_first_and_limits(many_runs):
    path, written = many_runs
    newest_first = sorted(written, key=lambda r: -r[1])
    with Catalog(path) as cat:
        got = cat.recent()
        assert [s.uid for s in got] == [u for u, _, _ in newest_first]
        assert [s.sample_name for s in got] == [s for _, _, s in newest_first]
        assert [s.uid for s in cat.recent(3)] == [u for u, _, _ in newest_first[:3]]
        assert cat.recent(0) == []
        assert len(cat.recent(-1)) == 6  # SQLite: a negative LIMIT is no limit
        assert len(cat.recent(np.int64(2))) == 2
        with pytest.raises(TypeError):
            cat.recent(2.5)
        first = got[0]
        uid, t, _ = newest_first[0]
        idx = [u for u, _, _ in written].index(uid)
        assert first == RunSummary(
            uid=uid,
            plan_name=f"plan{idx}",
            time_start=t,
            sample_name=None,
            time_stop=t + 5,
            exit_status="success" if idx % 2 else "aborted",
        )
        assert isinstance(first.time_start, float)


def test_recent_default_is_ten(tmp_path):
    path = tmp_path / "twelve.db"
    with BeamtimeWriter(path, seed=2) as w:
        for i in range(12):
            w.open_run("scan", time=T0 + i)
            w.close_run(time=T0 + i + 0.5)
    with Catalog(path) as cat:
        got = cat.recent()
        assert len(got) == 10
        assert [s.time_start for s in got] == [T0 + i for i in range(11, 1, -1)]


def test_by_sample_exact_name_newest_first(many_runs):
    path, written = many_runs
    with Catalog(path) as cat:
        ps = cat.by_sample("PS")
        expected = [u for u, t, s in sorted(written, key=lambda r: -r[1]) if s == "PS"]
        assert [s.uid for s in ps] == expected and len(expected) == 3
        assert {s.sample_name for s in ps} == {"PS"}
        assert [s.uid for s in cat.by_sample("P3HT")] == [written[1][0], written[5][0]]
        assert cat.by_sample("ps") == []  # exact match only
        assert cat.by_sample("P%") == []  # no LIKE patterns
        assert cat.by_sample("nope") == []


def test_by_sample_covers_duplicate_sample_rows(tmp_path):
    # The writer reuses names, but a hand-made file may hold two rows named alike.
    path = tmp_path / "dup.db"
    with BeamtimeWriter(path, seed=3) as w:
        first = w.open_run("scan", sample="PS", time=T0)
        w.close_run(time=T0 + 1)
        cur = w.connection.execute("INSERT INTO samples (name, formula) VALUES ('PS', 'C8H8-b')")
        w.connection.commit()
        second = w.open_run("scan", sample=cur.lastrowid, time=T0 + 10)
        w.close_run(time=T0 + 11)
    with Catalog(path) as cat:
        assert [s.uid for s in cat.by_sample("PS")] == [second, first]
        assert cat[second].sample.formula == "C8H8-b"
        assert cat[first].sample.formula is None


# ------------------------------------------------------------------------ Run
def test_run_properties_and_sample(beamtime):
    with Catalog(str(beamtime.path)) as cat:  # a str path is accepted too
        run = cat[beamtime.uids["nexafs"]]
        assert isinstance(run, Run)
        assert run.uid == beamtime.uids["nexafs"]
        assert run.plan_name == "nexafs"
        assert run.time_start == T0
        assert run.time_stop == T0 + 9
        assert run.exit_status == "success"
        assert run.num_events == 9  # 1 baseline + 8 primary
        assert run.sample == SampleMetadata(name="PS", tags=[], extra={}, id=run.sample.id)
        assert isinstance(run.sample.id, int)
        rsoxs = cat[beamtime.uids["rsoxs"]]
        assert rsoxs.sample.name == "P3HT" and rsoxs.num_events == 5


def test_sample_metadata_values(many_runs):
    path, written = many_runs
    with Catalog(path) as cat:
        sample = cat[written[0][0]].sample
        assert sample == SampleMetadata(
            name="PS", formula="C8H8", serial="S1", tags=["polymer", "ref"],
            beamline_pos="A3", extra={"t_nm": 50}, id=1,
        )
        assert cat[written[2][0]].sample is None  # run written without a sample


def test_deleted_sample_row_sets_null(tmp_path):
    path = tmp_path / "del.db"
    with BeamtimeWriter(path, seed=4) as w:
        uid = w.open_run("scan", sample="gone", time=T0)
        w.close_run(time=T0 + 1)
        # foreign keys are ON in the writer: ON DELETE SET NULL clears runs.sample_id
        w.connection.execute("DELETE FROM samples WHERE name = 'gone'")
        w.connection.commit()
        assert w.connection.execute("SELECT sample_id FROM runs").fetchone() == (None,)
    with Catalog(path) as cat:
        assert cat[uid].sample is None
        assert cat.recent()[0].sample_name is None
        assert cat.by_sample("gone") == []


def test_dangling_sample_id(tmp_path):
    path = tmp_path / "dangling.db"
    with BeamtimeWriter(path, seed=5) as w:
        uid = w.open_run("scan", sample="gone", time=T0)
        w.close_run(time=T0 + 1)
        w.connection.execute("PRAGMA foreign_keys = OFF")
        w.connection.execute("DELETE FROM samples WHERE name = 'gone'")
        w.connection.commit()
        assert w.connection.execute("SELECT sample_id FROM runs").fetchone() == (1,)
    with Catalog(path) as cat:
        assert cat[uid].sample is None
        assert [s.sample_name for s in cat.recent()] == [None]
        assert cat.by_sample("gone") == []


def test_open_run_never_closed(tmp_path):
    path = tmp_path / "open.db"
    w = BeamtimeWriter(path, seed=6).open()
    done = w.open_run("scan", sample="PS", time=T0)
    w.close_run(time=T0 + 1)
    live = w.open_run("scan", sample="PS", time=T0 + 10)
    w.open_stream("primary", IMAGE_KEYS, time=T0 + 10)  # commits, but no events yet
    w.close()  # as after a crash: the run stays open
    with Catalog(path) as cat:
        run = cat[live]
        assert (run.time_stop, run.exit_status, run.num_events) == (None, None, 0)
        summary = cat.recent(1)[0]
        assert (summary.uid, summary.time_stop, summary.exit_status) == (live, None, None)
        assert run.table().columns.tolist() == ["seq_num", "time"] and len(run.table()) == 0
        assert len(run.images()) == 0 and run.images().shape == (0, 0, 0)
        assert cat[done].exit_status == "success"


def test_unknown_uid_raises_keyerror_with_uid(beamtime):
    with Catalog(beamtime.path) as cat:
        for key in ("0" * 32, beamtime.uids["nexafs"][:8], "", 5, None):
            with pytest.raises(KeyError) as info:
                cat[key]
            assert info.value.args == (key,)


def test_missing_and_bad_files(tmp_path):
    missing = tmp_path / "nope.db"
    with pytest.raises(BeamtimeNotFoundError) as info:
        Catalog(missing)
    assert isinstance(info.value, FileNotFoundError) and str(missing) in str(info.value)
    assert not missing.exists()  # read-only: nothing created
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all, just some bytes")
    with pytest.raises(BeamtimeFormatError):
        Catalog(junk)


# ---------------------------------------------------------------------- table
MIXED_EVENTS: list[dict[str, Any]] = [
    {"f": 1.5, "i": 1, "s": "a", "b": True, "mix": 1, "lst": [1, 2], "sparse_i": 3, "nul": None, "bn": True},
    {"f": 2.5, "i": 2, "s": "b", "b": False, "mix": 2.5, "lst": [3, 4], "nul": None, "bn": None, "late": "x"},
    {"f": None, "i": 3, "s": None, "mix": 3, "lst": [5, 6], "sparse_b": True, "nul": None},
    {"i": 4, "s": "d", "b": True, "mix": 4, "lst": [7], "sparse_i": 5, "nul": 1.0, "bn": False, "late": None},
]


@pytest.fixture
def mixed(tmp_path: Path) -> tuple[Path, str, list[tuple[int, float, dict[str, Any]]]]:
    path = tmp_path / "mixed.db"
    with BeamtimeWriter(path, seed=8) as w:
        uid = w.open_run("scan", time=T0)
        w.open_stream("baseline", BASELINE_KEYS, time=T0)
        w.write_event({"sam_x_position": 1.0, "beam_current": 500}, time=T0 + 0.5)
        w.open_stream("primary", {}, time=T0 + 1)
        written = []
        for k, data in enumerate(MIXED_EVENTS):
            w.write_event(data, time=T0 + 1 + k)
            written.append((k + 2, T0 + 1 + k, data))
        w.open_stream("empty", {}, time=T0 + 9)
        w.close_run(time=T0 + 10)
    return path, uid, written


def test_table_matches_records_construction(mixed):
    path, uid, written = mixed
    with Catalog(path) as cat:
        df = cat[uid].table()
    expected = records_table(written)
    assert_frame_equal(df, expected)
    assert df.columns.tolist() == [
        "seq_num", "time", "f", "i", "s", "b", "mix", "lst", "sparse_i", "nul", "bn", "late", "sparse_b",
    ]
    assert df.seq_num.tolist() == [2, 3, 4, 5] and df.seq_num.dtype == np.int64
    assert df.time.tolist() == [T0 + 1, T0 + 2, T0 + 3, T0 + 4] and df.time.dtype == np.float64
    assert df.i.dtype == np.int64 and df.i.tolist() == [1, 2, 3, 4]
    assert df.f.dtype == np.float64 and np.isnan(df.f[2]) and np.isnan(df.f[3])
    assert df.mix.dtype == np.float64 and df.mix.tolist() == [1.0, 2.5, 3.0, 4.0]
    assert df.sparse_i.dtype == np.float64 and np.isnan(df.sparse_i[1])
    assert df.b.dtype == object and df.b[0] is True and df.b[1] is False
    assert np.isnan(df.b[2])  # missing from the event: NaN, not None
    assert df.sparse_b.tolist()[2] is True and np.isnan(df.sparse_b[0])
    assert df.lst.tolist() == [[1, 2], [3, 4], [5, 6], [7]]
    assert df.s.tolist()[0] == "a" and pd.isna(df.s[2])
    assert df.nul.dtype == np.float64 and np.isnan(df.nul[0]) and df.nul[3] == 1.0  # nulls among floats: NaN
    assert df.bn.dtype == object and df.bn.tolist()[1] is None and np.isnan(df.bn[2])  # null None, missing NaN
    assert df.late.tolist()[1] == "x" and pd.isna(df.late[0])


def test_table_of_single_typed_columns(mixed):
    path, uid, _ = mixed
    with Catalog(path) as cat:
        base = cat[uid].table("baseline")
    assert base.columns.tolist() == ["seq_num", "time", "sam_x_position", "beam_current"]
    assert base.seq_num.tolist() == [1] and base.beam_current.dtype == np.int64
    assert_frame_equal(base, records_table([(1, T0 + 0.5, {"sam_x_position": 1.0, "beam_current": 500})]))


@pytest.mark.parametrize("stream", ["empty", "no-such-stream", "Primary"])
def test_table_empty_or_unknown_stream(mixed, stream):
    path, uid, _ = mixed
    with Catalog(path) as cat:
        df = cat[uid].table(stream)
    assert_frame_equal(df, pd.DataFrame(columns=pd.Index(["seq_num", "time"])))
    assert df.columns.tolist() == ["seq_num", "time"] and len(df) == 0


def test_table_field_named_like_a_leading_column(tmp_path):
    # record.update(data) lets the event's own "time" win where it has one.
    path = tmp_path / "clash.db"
    events = [{"a": 1, "time": 99.0}, {"a": 2}, {"seq_num": 7, "a": 3}]
    with BeamtimeWriter(path, seed=9) as w:
        uid = w.open_run("scan", time=T0)
        w.open_stream("primary", {}, time=T0)
        for k, data in enumerate(events):
            w.write_event(data, time=T0 + k)
        w.close_run(time=T0 + 5)
    with Catalog(path) as cat:
        df = cat[uid].table()
    assert_frame_equal(df, records_table([(k + 1, T0 + k, d) for k, d in enumerate(events)]))
    assert df.time.tolist() == [99.0, T0 + 1, T0 + 2] and df.seq_num.tolist() == [1, 2, 7]


def test_table_reads_nan_and_infinity_as_the_beamline_writes_them(tmp_path):
    # The beamline encodes with json.dumps: a NaN reading becomes the bare token NaN.
    path = tmp_path / "nan.db"
    with BeamtimeWriter(path, seed=10) as w:
        uid = w.open_run("scan", time=T0)
        w.open_stream("primary", {}, time=T0)
        w.write_event({}, time=T0 + 1, raw_data=json.dumps({"i0": float("nan"), "pd": 1.0}))
        w.write_event({}, time=T0 + 2, raw_data=json.dumps({"i0": 2.0, "pd": float("inf")}))
        w.close_run(time=T0 + 3)
    with Catalog(path) as cat:
        df = cat[uid].table()
    assert np.isnan(df.i0[0]) and df.i0[1] == 2.0 and df.pd[1] == np.inf


@pytest.mark.parametrize("position", [1, 2])
def test_table_refuses_an_event_whose_data_is_null(tmp_path, position):
    # json.dumps(None) is "null": no event, so a BadJSONError naming it, never a row
    # of NaN. First in the stream it once crashed the interpreter: run in a child.
    path = tmp_path / "null.db"
    with BeamtimeWriter(path, seed=12) as w:
        uid = w.open_run("scan", time=T0)
        w.open_stream("primary", {}, time=T0)
        for seq in (1, 2, 3):
            w.write_event({"a": seq}, time=T0 + seq, raw_data="null" if seq == position else None)
        w.close_run(time=T0 + 4)
    script = (
        "import sys\nfrom intake_resonance.beamtime.errors import BadJSONError\nfrom intake_resonance.faces.facade import Catalog\n"
        "with Catalog(sys.argv[1]) as cat:\n    run = cat[sys.argv[2]]\n"
        "    try:\n        print(run.table().to_dict('list'))\n    except BadJSONError as exc:\n        print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(path), uid], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"seq_num {position}" in out.stdout and "must be a JSON object, found NoneType" in out.stdout


@pytest.mark.parametrize("seed", range(6))
def test_table_random_events_match_records_construction(tmp_path, seed):
    rng = np.random.default_rng(seed)
    pool: list[Any] = [0, 7, -3, 2.5, -0.0, True, False, None, "x", "", [1, 2], [1.5], 2**40]
    path = tmp_path / "random.db"
    written = []
    with BeamtimeWriter(path, seed=seed) as w:
        uid = w.open_run("scan", time=T0)
        w.open_stream("primary", {}, time=T0)
        for k in range(int(rng.integers(1, 12))):
            data = {}
            for field in ("p", "q", "r", "s"):
                if rng.random() < 0.8:
                    data[field] = pool[int(rng.integers(len(pool)))]
            w.write_event(data, time=T0 + k)
            written.append((k + 1, T0 + k, data))
        w.close_run(time=T0 + 100)
    with Catalog(path) as cat:
        assert_frame_equal(cat[uid].table(), records_table(written))


# --------------------------------------------------------------------- images
def test_images_values_and_shape(beamtime):
    frames = beamtime.frames["rsoxs"]
    with Catalog(beamtime.path) as cat:
        seq = cat[beamtime.uids["rsoxs"]].images()
    assert isinstance(seq, LazyImageSequence)
    assert len(seq) == 5 and seq.shape == (5, 6, 5)
    for i in range(5):
        np.testing.assert_array_equal(seq[i], frames[i])
        assert seq[i].shape == (6, 5) and seq[i].dtype == np.int32
    np.testing.assert_array_equal(seq[-1], frames[-1])
    np.testing.assert_array_equal(seq[-5], frames[0])
    np.testing.assert_array_equal(seq[np.int64(2)], frames[2])
    np.testing.assert_array_equal(seq[np.uint8(3)], frames[3])
    np.testing.assert_array_equal(seq[1:4], frames[1:4])
    np.testing.assert_array_equal(seq[::-2], frames[::-2])
    np.testing.assert_array_equal(seq[:], frames)
    np.testing.assert_array_equal(seq[-2:], frames[-2:])
    assert seq[:].dtype == np.int32 and seq[1:4].shape == (3, 6, 5)
    # iteration falls back on integer indexing and stops at IndexError
    np.testing.assert_array_equal(np.stack(list(seq)), frames)


@pytest.mark.parametrize("key", [slice(3, 3), slice(10, 20), slice(4, 1), slice(None, None, -1)])
def test_images_empty_slice(beamtime, key):
    with Catalog(beamtime.path) as cat:
        seq = cat[beamtime.uids["rsoxs"]].images()
    out = seq[key]
    if key == slice(None, None, -1):
        np.testing.assert_array_equal(out, beamtime.frames["rsoxs"][::-1])
    else:
        assert out.shape == (0,) and out.dtype == np.int32


@pytest.mark.parametrize("key", [5, -6, 100, np.int64(5)])
def test_images_index_out_of_range(beamtime, key):
    with Catalog(beamtime.path) as cat:
        seq = cat[beamtime.uids["rsoxs"]].images()
    with pytest.raises(IndexError):
        seq[key]


@pytest.mark.parametrize("key", [True, False, np.True_, "0", 1.0, np.float64(0), [0, 1], np.array([0]), None, (0, 0)])
def test_images_bad_index_types(beamtime, key):
    with Catalog(beamtime.path) as cat:
        seq = cat[beamtime.uids["rsoxs"]].images()
    with pytest.raises(TypeError):
        seq[key]


def test_images_missing_field_is_empty(beamtime):
    with Catalog(beamtime.path) as cat:
        for uid, field in ((beamtime.uids["rsoxs"], "no_such_field"), (beamtime.uids["nexafs"], "detector_image")):
            seq = cat[uid].images(field)
            assert len(seq) == 0 and seq.shape == (0, 0, 0)
            assert seq[:].shape == (0,)
            with pytest.raises(IndexError):
                seq[0]


def test_images_follow_references_out_of_order_and_across_streams(tmp_path):
    path = tmp_path / "ooo.db"
    rng = np.random.default_rng(11)
    frames = rng.integers(0, 2**16, size=(5, 4, 3)).astype(np.uint16)
    slots = [3, 0, 4, 1]  # stack positions of the primary events, in seq_num order
    with BeamtimeWriter(path, seed=11) as w:
        uid = w.open_run("rsoxs", time=T0)
        w.open_stream("primary", IMAGE_KEYS, time=T0)
        for k, slot in enumerate(slots):
            ev = w.write_event({"energy_position": 280.0 + k}, time=T0 + k)
            w.write_image(ev, "detector_image", frames[k], index=slot)
        w.write_event({"energy_position": 290.0}, time=T0 + 5)  # an event without a frame
        w.open_stream("dark", IMAGE_KEYS, time=T0 + 6)
        ev = w.write_event({"exposure": 1.0}, time=T0 + 7)
        w.write_image(ev, "detector_image", frames[4], index=2)
        w.close_run(time=T0 + 8)
    with Catalog(path) as cat:
        seq = cat[uid].images()
        assert seq.shape == (5, 4, 3)
        np.testing.assert_array_equal(seq[:], frames)  # seq_num order, not stack order
        np.testing.assert_array_equal(seq[-1], frames[4])
        np.testing.assert_array_equal(seq[1:3], frames[1:3])
        assert seq[0].dtype == np.uint16


def test_images_read_nothing_until_indexed(beamtime, tmp_path):
    # Move the store away: building the sequence still works, reading a frame fails.
    store = beamtime.path.with_suffix(".zarr")
    shutil.move(store, tmp_path / "elsewhere.zarr")
    with Catalog(beamtime.path) as cat:
        seq = cat[beamtime.uids["rsoxs"]].images()
        assert len(seq) == 5 and seq.shape == (5, 6, 5)
        assert seq[2:2].shape == (0,)  # an empty slice reads nothing either
        with pytest.raises(FramesMissingError) as info:
            seq[0]
        assert str(store) in str(info.value)
        assert isinstance(info.value, BeamtimeError)
        with pytest.raises(FramesMissingError):
            seq[1:3]


# ----------------------------------------------------------- paths, lifetime
@pytest.mark.parametrize("name", ["with space", "hash#tag", "what?", "100%", "odd #?% mix"])
def test_paths_with_uri_characters(tmp_path, name):
    folder = tmp_path / name
    path = folder / f"{name}.db"
    with BeamtimeWriter(path, seed=12) as w:
        uid, events, frames = write_rsoxs(w, T0, n=3)
    with Catalog(path) as cat:
        assert [s.uid for s in cat.recent()] == [uid]
        run = cat[uid]
        assert run.table().energy_position.tolist() == [e["energy_position"] for e in events]
        np.testing.assert_array_equal(run.images()[:], frames)
    assert not (folder / name).exists()  # nothing created by a misparsed URI


def test_context_manager_closes(beamtime):
    with Catalog(beamtime.path) as cat:
        run = cat[beamtime.uids["rsoxs"]]
        seq = run.images()
        assert not cat.closed
    assert cat.closed and cat._db._conn is None
    for use in (cat.recent, lambda: cat.by_sample("PS"), lambda: cat[run.uid], run.table, run.images, lambda: run.sample):
        with pytest.raises(ValueError, match="closed"):
            use()
    # row values read before closing stay available, and frames need no database
    assert run.plan_name == "rsoxs"
    np.testing.assert_array_equal(seq[0], beamtime.frames["rsoxs"][0])
    cat.close()  # closing twice is harmless


def test_close_without_context_manager(beamtime):
    cat = Catalog(beamtime.path)
    assert len(cat.recent()) == 2
    cat.close()
    with pytest.raises(ValueError):
        cat.recent()
    assert "closed" in repr(cat)


def test_nexafs_fixture_table(tmp_path):
    path = tmp_path / "nexafs.db"
    with BeamtimeWriter(path, seed=13) as w:
        uid, events = write_nexafs(w, T0, n=4, sample=None)
    with Catalog(path) as cat:
        run = cat[uid]
        df = run.table()
        assert run.sample is None
    expected = records_table([(k + 2, T0 + 1 + k, e) for k, e in enumerate(events)])
    assert_frame_equal(df, expected)
    assert all(df[c].dtype == np.float64 for c in ("energy_position", "i0", "photodiode"))
