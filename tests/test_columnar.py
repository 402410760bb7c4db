"""records.event_table: the columnar reader gives what the plain decoder gives, range by range."""

from __future__ import annotations

import json
import math
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import T0
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake_resonance.beamtime import records
from intake_resonance.beamtime.errors import BadJSONError, BeamtimeDataError
from intake_resonance.beamtime.format import Database
from intake_resonance.beamtime.records import MISSING
from intake_resonance.faces.facade import Catalog
from intake_resonance.tools.writer import BeamtimeWriter


def _write(path: Path, events: list[Any], *, keys: dict | None = None) -> str:
    """One run whose primary stream holds ``events`` as the beamline writes them (``json.dumps``).

    An event given as a str is stored as that text.
    """
    with BeamtimeWriter(path) as w:
        uid = w.open_run("scan", time=T0)
        w.open_stream("baseline", {}, time=T0)
        w.write_event({"ring": 1.0}, time=T0)  # seq 1: primary's seq_nums start at 2
        w.open_stream("primary", keys or {}, time=T0)
        for i, e in enumerate(events):
            w.write_event({}, time=T0 + 0.1 * i, raw_data=e if isinstance(e, str) else json.dumps(e))
    return uid


def _same_value(got: Any, want: Any) -> bool:
    if isinstance(want, float) and math.isnan(want):
        return isinstance(got, float) and math.isnan(got)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(_same_value, got, want))
    return type(got) is type(want) and got == want


def assert_same(table: records.EventTable, ref: records.EventColumns, missing: Any = MISSING) -> None:
    """``table`` holds exactly ``ref``'s values, typed only where the contract allows."""
    assert table.seq_num.dtype == np.int64 and table.time.dtype == np.float64
    assert table.seq_num.tolist() == ref.seq_num.tolist()
    assert table.time.tolist() == ref.time.tolist()  # exact, not approximately
    assert list(table.columns) == list(ref.columns)  # order of first appearance
    for name, want in ref.columns.items():
        got = table.columns[name]
        if isinstance(got, list):
            assert len(got) == len(want) and all(map(_same_value, got, want)), name
            continue
        assert len(got) == len(want), name
        gap = [v is None or v is missing for v in want]
        if got.dtype == np.int64:
            assert all(type(v) is int for v in want) and got.tolist() == want, name
        elif got.dtype == bool:
            assert all(type(v) is bool for v in want) and got.tolist() == want, name
        else:
            assert got.dtype == np.float64, name
            assert all(g or type(v) in (int, float) for g, v in zip(gap, want)), name
            assert any(gap) or any(type(v) is float for v in want), name  # else it would be int64
            for g, v, x in zip(gap, want, got.tolist()):
                assert math.isnan(x) if g or (type(v) is float and math.isnan(v)) else x == float(v), name
        # the consumers' typing gives the same arrays either way
        a, a2 = records.column_array(got)
        b, b2 = records.column_array(want)
        assert a2 == b2 and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name


# ------------------------------------------------------------ property: any events
_FIELDS = ["energy_position", "i0", "ü name", 'q"t', "flag", "hos"]


@st.composite
def _event_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Events whose fields mostly keep one kind, with gaps, nulls, NaN and the odd other kind."""
    kinds = draw(st.dictionaries(st.sampled_from(_FIELDS), st.sampled_from(["float", "int", "bool", "str", "list"]), min_size=1))
    values = {
        "float": st.floats(allow_nan=False, allow_infinity=False),
        "int": st.integers(min_value=-(2**63), max_value=2**63 - 1),
        "bool": st.booleans(),
        "str": st.text(max_size=6),
        "list": st.lists(st.integers(-5, 5), min_size=2, max_size=2),
    }
    odd = st.one_of(
        st.none(),
        st.just(math.nan),
        st.sampled_from([math.inf, -math.inf]),
        st.integers(min_value=2**63, max_value=2**64),
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(-3, 3),
        st.booleans(),
        st.text(max_size=3),
        st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=3),
    )
    n = draw(st.integers(min_value=1, max_value=12))
    events = []
    for _ in range(n):
        ev: dict[str, Any] = {}
        for name, kind in kinds.items():
            roll = draw(st.integers(0, 9))
            if roll == 0:
                continue  # the event lacks the field
            ev[name] = draw(odd if roll == 1 else values[kind])
        order = draw(st.permutations(list(ev)))
        events.append({k: ev[k] for k in order})  # shuffled key order
    return events


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=_event_lists(), chunk=st.sampled_from([1, 2, 3, 5, 64]))
def test_event_table_matches_plain_decoder(tmp_path_factory: pytest.TempPathFactory, events: list[dict], chunk: int) -> None:
    path = tmp_path_factory.mktemp("col") / "bt.db"
    uid = _write(path, events)
    with Database(path) as db:
        for missing in (MISSING, None):
            ref = records.stream_events(db, uid, "primary", missing=missing)
            assert_same(records.event_table(db, uid, "primary", missing=missing, chunk_events=chunk), ref, missing)


# ------------------------------------------------------------------ named cases
def _table(path: Path, uid: str, chunk: int = 2, missing: Any = MISSING) -> tuple[records.EventTable, records.EventColumns]:
    with Database(path) as db:
        return (
            records.event_table(db, uid, "primary", chunk_events=chunk, missing=missing),
            records.stream_events(db, uid, "primary", missing=missing),
        )


def test_typed_columns_and_undeclared_fields(tmp_path: Path) -> None:
    events = [{"e": 280.0 + i, "n": i, "ok": i % 2 == 0, "s": f"Größe {i}", "extra": 1.5} for i in range(7)]
    uid = _write(tmp_path / "bt.db", events, keys={"e": {"dtype": "number"}})
    table, ref = _table(tmp_path / "bt.db", uid)
    assert_same(table, ref)
    assert table.columns["e"].dtype == np.float64 and table.columns["n"].dtype == np.int64
    assert table.columns["ok"].dtype == bool and table.columns["s"] == [f"Größe {i}" for i in range(7)]
    assert table.columns["extra"].tolist() == [1.5] * 7  # not declared in data_keys, still read


def test_nan_tokens_fall_back_for_their_range_only(tmp_path: Path) -> None:
    events = [{"a": float(i), "b": i} for i in range(9)]
    events[4] = {"a": math.nan, "b": 4}
    events[5] = {"a": -math.inf, "b": 5}
    uid = _write(tmp_path / "bt.db", events)
    table, ref = _table(tmp_path / "bt.db", uid, chunk=3)
    assert_same(table, ref)
    a = table.columns["a"]
    assert a.dtype == np.float64 and math.isnan(a[4]) and a[5] == -math.inf and a[8] == 8.0
    assert table.columns["b"].dtype == np.int64


def test_gaps_nulls_and_ints_that_gain_gaps(tmp_path: Path) -> None:
    events = [{"n": 1, "f": 1.5, "s": "x", "t": True}, {"n": 2, "f": None, "s": None}, {"f": 2.5, "t": False}, {"n": 4}]
    uid = _write(tmp_path / "bt.db", events)
    for chunk in (1, 2, 10):
        table, ref = _table(tmp_path / "bt.db", uid, chunk)
        assert_same(table, ref)
        n = table.columns["n"]
        assert n.dtype == np.float64 and n[:2].tolist() == [1.0, 2.0] and math.isnan(n[2]) and n[3] == 4.0
        assert table.columns["s"] == ["x", None, MISSING, MISSING]
        assert table.columns["t"] == [True, MISSING, False, MISSING]


def test_lists_become_2d_and_mixed_kinds_stay_plain(tmp_path: Path) -> None:
    events = [{"spec": [1.0, 2.0], "mix": 1.5}, {"spec": [3, 4], "mix": 2.0}, {"spec": [5.0, 6.0], "mix": "n/a"}, {"spec": None, "mix": 3}]
    uid = _write(tmp_path / "bt.db", events)
    for chunk in (1, 2, 4):
        table, ref = _table(tmp_path / "bt.db", uid, chunk)
        assert_same(table, ref)
        assert table.columns["mix"] == [1.5, 2.0, "n/a", 3]
        arr, is_2d = records.column_array(table.columns["spec"])
        assert is_2d and arr.shape == (4, 2) and arr[:3].tolist() == [[1, 2], [3, 4], [5, 6]] and np.isnan(arr[3]).all()


def test_ints_beyond_int64_stay_python_ints(tmp_path: Path) -> None:
    events = [{"big": 2**64 - 1, "n": 1}, {"big": 3, "n": 2}]
    uid = _write(tmp_path / "bt.db", events)
    table, ref = _table(tmp_path / "bt.db", uid, chunk=1)
    assert_same(table, ref)
    assert table.columns["big"] == [2**64 - 1, 3]


def test_order_checked_when_rows_are_out_of_order(tmp_path: Path) -> None:
    uid = _write(tmp_path / "bt.db", [{"i": i} for i in range(6)])
    with closing(sqlite3.connect(tmp_path / "bt.db")) as conn, conn:
        # Rewrite seq_nums so the rowid order disagrees: a table without the index walks in rowid order.
        conn.execute("DROP INDEX idx_events_seq")
        conn.execute("UPDATE events SET seq_num = 100 - seq_num WHERE seq_num > 1")
    table, ref = _table(tmp_path / "bt.db", uid, chunk=2)
    assert_same(table, ref)
    assert table.seq_num.tolist() == [93, 94, 95, 96, 97, 98] and table.columns["i"].tolist() == [5, 4, 3, 2, 1, 0]


def test_time_kept_exactly_even_when_not_on_the_integer_grid(tmp_path: Path) -> None:
    uid = _write(tmp_path / "bt.db", [{"i": i} for i in range(4)])
    with closing(sqlite3.connect(tmp_path / "bt.db")) as conn, conn:
        conn.execute("UPDATE events SET time = 0.1 + seq_num / 3.0")  # small times: finer than 2**-22
    table, ref = _table(tmp_path / "bt.db", uid, chunk=2)
    assert_same(table, ref)


@pytest.mark.parametrize(
    ("sql", "error", "words"),
    [
        ("UPDATE events SET data = '{\"a\": 1' WHERE seq_num = 5", BadJSONError, "seq_num 5"),
        ("UPDATE events SET data = '[1, 2]' WHERE seq_num = 4", BadJSONError, "seq_num 4.*JSON object"),
        ("UPDATE events SET data = '' WHERE seq_num = 6", BadJSONError, "seq_num 6"),
        ("UPDATE events SET data = '{\"a\": 1}{\"a\": 2}' WHERE seq_num = 3", BadJSONError, "seq_num 3"),
        ("UPDATE events SET time = 'noon' WHERE seq_num = 7", BeamtimeDataError, "seq_num 7.*events.time"),
        ("UPDATE events SET time = X'00' WHERE seq_num = 2", BeamtimeDataError, "seq_num 2.*events.time"),
    ],
)
def test_broken_events_name_their_seq_num(tmp_path: Path, sql: str, error: type, words: str) -> None:
    uid = _write(tmp_path / "bt.db", [{"a": float(i)} for i in range(8)])
    with closing(sqlite3.connect(tmp_path / "bt.db")) as conn, conn:
        conn.execute(sql)
    with Database(tmp_path / "bt.db") as db:
        with pytest.raises(error, match=words):
            records.event_table(db, uid, "primary", chunk_events=2)
        with pytest.raises(error, match=words):
            records.stream_events(db, uid, "primary")


@pytest.mark.parametrize("where", ["event", "list"])
def test_deep_nesting_is_bad_json_not_recursion(tmp_path: Path, where: str) -> None:
    deep = "[" * 600 + "]" * 600
    deeper = "[" * 5000 + "]" * 5000
    events: list[Any] = [{"a": 1.0}, {"a": 2.0}, {"a": 3.0}]
    events[1] = '{"a": ' + (deep if where == "event" else deeper) + "}"
    uid = _write(tmp_path / "bt.db", events)
    with Database(tmp_path / "bt.db") as db:
        for read in (records.stream_events, lambda *a: records.event_table(*a, chunk_events=1)):
            with pytest.raises(BadJSONError, match="seq_num 3.*nested deeper than 100 levels"):
                read(db, uid, "primary")
    with Catalog(tmp_path / "bt.db") as cat, pytest.raises(BadJSONError, match="seq_num 3"):
        cat[uid].table()


def test_deep_metadata_data_keys_and_sample(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    deep = '{"k": ' + "[" * 700 + "]" * 700 + "}"
    with BeamtimeWriter(path) as w:
        sid = w.add_sample("PS")
        uid = w.open_run("scan", sample="PS", time=T0)
        w.open_stream("primary", {"a": {}}, time=T0)
        w.connection.execute("UPDATE runs SET metadata = ?", (deep,))
        w.connection.execute("UPDATE streams SET data_keys = ?", (deep,))
        w.connection.execute("UPDATE samples SET extra = ?", ("[" * 5000 + "]" * 5000,))
    with Database(path) as db:
        run = records.get_run(db, uid)
        with pytest.raises(BadJSONError, match="run metadata is nested deeper"):
            run.metadata(db)
        with pytest.raises(BadJSONError, match="stream data_keys"):
            records.list_streams(db, uid)
        with pytest.raises(BadJSONError, match="sample extra"):
            records.get_sample(db, sid)


def test_facade_table_from_event_table(tmp_path: Path) -> None:
    events = [{"a": 1, "b": "x", "f": 0.5}, {"a": 2, "f": None}, {"a": 3, "b": "y", "f": 1.5}]
    uid = _write(tmp_path / "bt.db", events)
    with Catalog(tmp_path / "bt.db") as cat:
        df = cat[uid].table()
    assert list(df.columns) == ["seq_num", "time", "a", "b", "f"]
    assert df["a"].dtype == np.int64 and df["f"].dtype == np.float64 and math.isnan(df["f"][1])
    assert df["b"][0] == "x" and df["b"].isna()[1]


def test_nan_readings_among_ints_bools_and_strings_are_gaps() -> None:
    ints, _ = records.column_array([math.nan, 0, 2])
    assert ints.dtype == np.float64 and math.isnan(ints[0]) and ints[1:].tolist() == [0.0, 2.0]
    flags, _ = records.column_array([True, math.nan])
    assert flags.dtype == np.float64 and flags[0] == 1.0 and math.isnan(flags[1])
    names, _ = records.column_array(["x", math.nan])
    assert names.dtype == object and names[0] == "x" and math.isnan(names[1])
