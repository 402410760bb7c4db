"""Many runs read at once: each result equals what the runs give one by one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import IMAGE_KEYS, T0

from intake_resonance.beamtime import records
from intake_resonance.beamtime.errors import BadJSONError, BeamtimeError
from intake_resonance.beamtime.format import Database
from intake_resonance.datasets.many import events_frame, open_many, stack_many
from intake_resonance.datasets.open import open_run_dataset
from intake_resonance.datasets.stacking import stack_runs
from intake_resonance.tools.writer import BeamtimeWriter

KEYS = {"a": {"units": "eV", "source": "motor"}, "b": {"units": "V"}, "c": {"units": "s"}}


@pytest.fixture
def mixed(tmp_path):
    """Runs with different fields and lengths, int and float values, an empty run, a baseline, a live run."""
    path = tmp_path / "many.db"
    uids = []
    with BeamtimeWriter(path, seed=3) as w:
        for k in range(5):
            uid = w.open_run("nexafs", time=T0 + 100 * k, sample=("PS", "PMMA")[k % 2], metadata={"k": k, "edge": "C"})
            w.open_stream("baseline", {"ring": {"units": "mA"}}, time=T0 + 100 * k)
            w.write_event({"ring": 500.0 + k}, time=T0 + 100 * k + 0.5)
            w.open_stream("primary", KEYS, time=T0 + 100 * k + 0.6)
            for i in range(k + 2):
                data: dict = {"a": i if k % 2 else i + 0.25, "c": 1.5 * i}
                if k == 3:
                    data["b"] = 7 + i  # ints in one run only
                w.write_event(data, time=T0 + 100 * k + 1 + i)
            w.close_run(time=T0 + 100 * k + 50)
            uids.append(uid)
        uid = w.open_run("empty", time=T0 + 1000)
        w.open_stream("primary", KEYS, time=T0 + 1000)
        w.close_run(time=T0 + 1001)
        uids.append(uid)
        uid = w.open_run("live", time=T0 + 2000)
        w.open_stream("primary", KEYS, time=T0 + 2000)
        w.write_event({"a": 5, "c": 2.5}, time=T0 + 2001)
        w.close()  # the run stays open, its events committed
        uids.append(uid)
    return path, uids


@pytest.mark.parametrize("by", [None, "k", "sample_name"])
def test_stack_many_equals_stack_runs(mixed, by):
    path, uids = mixed
    closed = uids[:5]
    xr.testing.assert_identical(stack_many(path, closed, by=by), stack_runs([open_run_dataset(path, u) for u in closed], by=by))


def test_uid_prefixes_read_as_their_runs(mixed):
    path, uids = mixed
    prefixes = [u[:8] for u in uids[:3]] + uids[3:5]  # prefixes and full uids mixed, order kept
    xr.testing.assert_identical(stack_many(path, prefixes), stack_many(path, uids[:5]))
    pd.testing.assert_frame_equal(events_frame(path, prefixes), events_frame(path, uids[:5]))
    with pytest.raises(BeamtimeError, match="no run"):
        stack_many(path, [uids[0], "ffffff00"])


def test_stack_many_empty_and_live_runs(mixed):
    path, uids = mixed
    got = stack_many(path, uids)
    xr.testing.assert_identical(got, stack_runs([open_run_dataset(path, u) for u in uids]))
    assert got.sizes == {"run": 7, "event": 6}
    assert np.isnan(got.a.values[5]).all() and got.a.values[6, 0] == 5.0
    assert got.b.attrs == {"units": "V"} and np.isnan(got.b.values[0]).all()


def test_stack_many_other_stream_and_alike_runs(mixed):
    path, uids = mixed
    closed = uids[:5]
    got = stack_many(path, closed, stream="baseline")
    xr.testing.assert_identical(got, stack_runs([open_run_dataset(path, u, "baseline") for u in closed]))
    assert got.ring.values[:, 0].tolist() == [500.0, 501.0, 502.0, 503.0, 504.0]


def test_open_many_datasets_equal_per_run_up_to_shared_dtype(mixed):
    path, uids = mixed
    for ds, uid in zip(open_many(path, uids), uids):
        one = open_run_dataset(path, uid)
        assert set(ds.variables) == set(one.variables)
        assert ds.attrs == one.attrs
        for name in one.variables:
            np.testing.assert_array_equal(ds[name].values, one[name].values.astype(ds[name].dtype))
            assert ds[name].attrs == one[name].attrs


def test_events_frame_equals_per_run_tables(mixed):
    path, uids = mixed
    df = events_frame(path, uids)
    assert list(df.columns) == ["uid", "seq_num", "time", "a", "c", "b"]
    assert df.attrs == {"stream": "primary", "skipped_runs": []}
    assert list(df.uid.cat.categories) == uids
    assert str(df.time.dtype) == "datetime64[ns, UTC]"
    # a is int in some runs, float in others: float64 everywhere; b only in one run: NaN elsewhere
    assert df.a.dtype == np.float64 and df.b.dtype == np.float64 and df.seq_num.dtype == np.int64
    for uid in uids:
        part = df[df.uid == uid]
        one = open_run_dataset(path, uid)
        assert len(part) == one.sizes["time"]
        np.testing.assert_array_equal(part.seq_num.to_numpy(), one.seq_num.values)
        np.testing.assert_array_equal(part.time.dt.tz_localize(None).to_numpy(), one.time.values)
        for name in ("a", "b", "c"):
            want = one[name].values.astype(float) if name in one else np.full(len(part), np.nan)
            np.testing.assert_array_equal(part[name].to_numpy(), want)


def test_events_frame_fields_arrow_and_stream(mixed):
    path, uids = mixed
    df = events_frame(path, uids, fields=["c", "nope"])
    assert list(df.columns) == ["uid", "seq_num", "time", "c", "nope"] and df.nope.isna().all()
    table = events_frame(path, uids, fields=["c"], engine="arrow")
    assert table.column_names == ["uid", "seq_num", "time", "c"]
    assert table.column("c").to_pylist() == df.c.tolist()
    assert table.column("uid").to_pylist() == df.uid.astype(str).tolist()
    base = events_frame(path, uids, stream="baseline")
    assert base.ring.tolist() == [500.0, 501.0, 502.0, 503.0, 504.0]


def test_events_frame_renames_fields_named_like_its_columns(tmp_path):
    path = tmp_path / "clash.db"
    with BeamtimeWriter(path, seed=1) as w:
        uid = w.open_run("scan", time=T0)
        w.open_stream("primary", {}, time=T0)
        w.write_event({"uid": "mine", "time": 3, "x": 1.0}, time=T0 + 1)
        w.close_run(time=T0 + 2)
    df = events_frame(path, [uid])
    assert list(df.columns) == ["uid", "seq_num", "time", "uid_field", "time_field", "x"]
    assert df.uid_field.tolist() == ["mine"] and df.time_field.tolist() == [3] and df.uid.tolist() == [uid]


def test_batches_and_ranges_give_the_same_table(mixed):
    path, uids = mixed
    db = Database(path)
    whole = records.many_event_tables(db, uids)
    for batch in (1, 3, 4):  # runs longer than a batch are read in ranges
        part = records.many_event_tables(db, uids, batch_events=batch)
        np.testing.assert_array_equal(part.offsets, whole.offsets)
        np.testing.assert_array_equal(part.events.seq_num, whole.events.seq_num)
        for name, values in whole.events.columns.items():
            np.testing.assert_array_equal(part.events.columns[name], values)
    db.close()


def _set_event_data(path, run_uid, seq_num, data, as_text=False):
    """Overwrite one primary event's stored data (bytes stored as TEXT with ``as_text``), as a crafted file would hold it."""
    import sqlite3

    value = "CAST(? AS TEXT)" if as_text else "?"
    conn = sqlite3.connect(path)
    conn.execute(
        f"UPDATE events SET data = {value} WHERE seq_num = ? AND stream_uid IN "
        "(SELECT uid FROM streams WHERE run_uid = ? AND name = 'primary')",
        (data, seq_num, run_uid),
    )
    conn.commit()
    conn.close()


@pytest.fixture
def broken(mixed):
    path, uids = mixed
    _set_event_data(path, uids[2], 3, '{"a": 1,')
    return path, uids


def test_a_bad_run_among_many_names_its_uid(broken):
    path, uids = broken
    with pytest.raises(BadJSONError, match=uids[2]) as info:
        stack_many(path, uids)
    assert "seq_num 3" in str(info.value)
    with pytest.raises(BeamtimeError, match=uids[2]):
        events_frame(path, uids)


def test_errors_skip_leaves_the_bad_run_out_and_lists_it(broken):
    path, uids = broken
    good = [u for u in uids if u != uids[2]]
    got = stack_many(path, uids, errors="skip")
    assert got.attrs["skipped_runs"] == [uids[2]]
    got.attrs["skipped_runs"] = []  # what a stack that skipped nothing says
    xr.testing.assert_identical(got, stack_many(path, good))
    df = events_frame(path, uids, errors="skip")
    assert df.attrs["skipped_runs"] == [uids[2]] and uids[2] not in set(df.uid)
    pd.testing.assert_frame_equal(df, events_frame(path, good), check_categorical=False, check_like=False)
    table = events_frame(path, uids, errors="skip", engine="arrow")
    assert table.schema.metadata[b"skipped_runs"] == f'["{uids[2]}"]'.encode()


def test_image_runs_stack_lazily_through_the_bulk_read(tmp_path):
    path = tmp_path / "img.db"
    uids, frames = [], []
    with BeamtimeWriter(path, seed=2) as w:
        for k, n in enumerate((3, 2)):
            uid = w.open_run("rsoxs", time=T0 + 100 * k)
            w.open_stream("primary", IMAGE_KEYS, time=T0 + 100 * k)
            f = np.full((n, 6, 5), k + 1, np.int32)
            for i in range(n):
                ev = w.write_event({"energy_position": 280.0 + i, "exposure": 0.1}, time=T0 + 100 * k + i)
                w.write_image(ev, "detector_image", f[i])
            w.close_run(time=T0 + 100 * k + 50)
            uids.append(uid)
            frames.append(f)
    got = stack_many(path, uids)
    import dask.array as da

    assert isinstance(got.detector_image.data, da.Array)
    xr.testing.assert_identical(got.compute(), stack_runs([open_run_dataset(path, u) for u in uids]).compute())
    np.testing.assert_array_equal(got.detector_image.values[1, :2], frames[1])


def test_intake_v1_and_v2_give_the_same_tables_and_stacks(mixed):
    from intake_resonance.faces.intake_drivers import BeamtimeCatalog
    from intake_resonance.faces.intake_readers import RunCatalog

    path, uids = mixed
    v1, v2 = BeamtimeCatalog(str(path)), RunCatalog.from_beamtime(path)
    pd.testing.assert_frame_equal(v1.to_dataframe(), v2.to_dataframe())
    pd.testing.assert_frame_equal(v1.events(), v2.events())
    pd.testing.assert_frame_equal(v1.events(), events_frame(path, uids))
    pd.testing.assert_frame_equal(v1.events("baseline", ["ring"]), v2.events("baseline", ["ring"]))
    xr.testing.assert_identical(v1.stack(runs=uids[:5], by="k"), v2.stack(runs=uids[:5], by="k"))
    found1, found2 = v1.search(plan_name="nexafs"), v2.search(plan_name="nexafs")
    xr.testing.assert_identical(found1.stack(), stack_many(path, uids[:5]))
    xr.testing.assert_identical(found1.stack(), found2.stack())
    pd.testing.assert_frame_equal(found1.events(fields=["a"]), found2.events(fields=["a"]))
    assert found2.to_dataframe().uid.tolist() == uids[:5]
    v1.close()


def test_runs_table_is_cached_until_a_commit(mixed):
    from intake_resonance.datasets import runs_table

    path, uids = mixed
    db = Database(path)
    first = runs_table.runs_frame(db, None, "primary")
    pd.testing.assert_frame_equal(first, runs_table.build_runs_frame(db, None, "primary"))
    first.loc[0, "plan_name"] = "changed"  # a copy: the cache keeps its own
    again = runs_table.runs_frame(db, None, "primary")
    assert again.plan_name[0] == "nexafs" and again.num_events.tolist() == [3, 4, 5, 6, 7, 0, 1]
    with BeamtimeWriter(path) as w:
        w.open_run("later", time=T0 + 5000)
        w.close_run(time=T0 + 5001)
    after = runs_table.runs_frame(db, None, "primary")
    assert len(after) == 8 and after.plan_name.iloc[-1] == "later"
    db.close()


def test_a_batch_arrow_cannot_read_is_read_run_by_run(mixed):
    # A newline inside one event's JSON (pretty-printed by hand), and NaN, which json.dumps writes.
    path, uids = mixed
    _set_event_data(path, uids[1], 3, '{"a": 1.5,\n "c": NaN}')
    db = Database(path)
    many = records.many_event_tables(db, uids)
    for i, uid in enumerate(uids):
        one = records.event_table(db, uid, "primary", missing=None)
        part = many.table(i)
        np.testing.assert_array_equal(part.seq_num, one.seq_num)
        for name, values in one.columns.items():
            np.testing.assert_array_equal(np.asarray(part.columns[name], float), np.asarray(values, float))
    assert np.isnan(many.table(1).columns["c"][1]) and many.table(1).columns["a"][1] == 1.5
    db.close()


def test_event_text_not_utf8_among_many_names_its_run(mixed):
    path, uids = mixed
    bad = bytes.fromhex("7b2261223a312e352c226e6f7465223a22fffe227d")  # {"a":1.5,"note":"<0xff 0xfe>"}
    _set_event_data(path, uids[1], 3, bad, as_text=True)
    with pytest.raises(BadJSONError, match=uids[1]) as info:
        events_frame(path, uids)
    assert info.value.run == uids[1] and info.value.seq_num == 3
    got = stack_many(path, uids, errors="skip")
    assert got.attrs["skipped_runs"] == [uids[1]] and uids[1] not in got.run.values


def test_crafted_statistics_cannot_slow_a_many_run_read(tmp_path):
    import shutil

    from conftest import write_nexafs
    from test_hostile_stats import STEP, _craft, _steps

    plain = tmp_path / "plain.db"
    with BeamtimeWriter(plain, seed=12) as w:
        w.connection.execute("PRAGMA synchronous = OFF")
        uids = [write_nexafs(w, T0 + 100 * i, n=30)[0] for i in range(120)]
    crafted = tmp_path / "crafted.db"
    shutil.copy(plain, crafted)
    _craft(crafted)
    some = uids[40:80]
    reads = {
        "many_event_tables": lambda db: records.many_event_tables(db, some).events.seq_num.tolist(),
        "events_frame": lambda db: events_frame(db, some).to_dict("list"),
        "stack_many": lambda db: stack_many(db, some, by="sample_name").drop_attrs().to_dict(),
        "runs_table": lambda db: records.counts_columns(db, uids)[0].tolist(),
    }
    for name, read in reads.items():
        plain_steps, plain_out = _steps(plain, read)
        crafted_steps, crafted_out = _steps(crafted, read)
        assert crafted_out == plain_out, name
        assert crafted_steps <= 2 * plain_steps + 20 * STEP, (name, plain_steps, crafted_steps)


def test_text_columns_stack_in_bulk_as_run_by_run(tmp_path):
    from intake_resonance.datasets.stacking import stack_runs

    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        uids = []
        for k, n in enumerate((3, 5)):  # unequal lengths: the shorter run is padded
            uids.append(w.open_run("scan", time=T0 + 100 * k))
            w.open_stream("primary", {}, time=T0 + 100 * k)
            for i in range(n):
                w.write_event({"e": float(i), "note": "n" * (i + 1)}, time=T0 + 100 * k + i + 1)
            w.close_run("success", time=T0 + 100 * k + 50)
    bulk = stack_many(path, uids)
    xr.testing.assert_identical(bulk, stack_runs([open_run_dataset(path, u) for u in uids]))
    assert bulk.note.dtype == object and bulk.note.values[1].tolist() == ["n", "nn", "nnn", "nnnn", "nnnnn"]
