"""A stream's events read column-wise, chunk by chunk, into preallocated columns.

:func:`stream_events` makes one Python object per value; for a long run that
costs several times the SQLite fetch and about twenty times the result in
memory. :func:`event_table` instead asks SQLite for one buffer per range of
``seq_num`` (the JSON of the range's events joined by newlines, and the
range's ``seq_num`` and ``time`` as integer text), decodes the JSON with
Arrow's compiled reader straight into typed columns, and copies those into
columns preallocated for the whole stream. While one range decodes on a
worker thread the next is fetched (both release the GIL), so the two cores
overlap.

The result has exactly the values :func:`stream_events` gives, typed where
that loses nothing any consumer tells apart (see :class:`EventTable`). Every
case Arrow reads differently from Python's ``json`` falls back, for that
range only, to the plain-values decoder: non-finite numbers (``NaN``,
``Infinity``), integers beyond int64, ``null``\\ s in boolean or string
fields, lists and nested objects, duplicate keys, text that is not one JSON
object per event, ``time`` or ``seq_num`` that are not plain numbers, events
out of ``seq_num`` order. A range with a broken event, or a field whose
kinds mix across ranges in a way the typed columns cannot keep exactly,
makes the whole stream go through :func:`stream_events`, so errors are the
same as there, naming the seq_num.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import BadTextError, BeamtimeError
from ..format import Database
from ..plans import indexed_by
from ._values import MISSING
from .events import EventColumns, decode_event_rows, stream_events

__all__ = ["EventTable", "event_table", "table_from_columns", "seq_bounds", "chunk_for", "CHUNK_EVENTS", "MIN_CHUNK_EVENTS"]

#: Most events per range: about 20 MB of JSON for the beamline's 12-field events.
CHUNK_EVENTS = 65536
#: Fewest events per range (below it a range's fixed cost shows).
MIN_CHUNK_EVENTS = 1024
#: A stream is read in at least this many ranges (between the two bounds above), so
#: the one or two ranges in flight stay a small part of the result at every size.
_RANGES = 6


def chunk_for(n_events: int) -> int:
    """Events per range for a stream of ``n_events``: ``n_events / 6`` within [1 024, 65 536]."""
    return max(MIN_CHUNK_EVENTS, min(CHUNK_EVENTS, -(-n_events // _RANGES)))

# ``time`` travels as the integer time * 2**22: exact for every float whose
# last bit is worth at least 2**-22 s (all epoch times after 2004), checked
# per range in SQL; the power of two makes scaling back exact too.
_TIME_SCALE = 4194304
# A stream whose seq_num span is wider than this is read by stream_events
# (no real run comes near; it bounds the preallocation and the range count).
_MAX_SPAN = 1 << 26

_RANGE_SQL = (
    "SELECT count(*), count(data), sum(substr(data, 1, 1) = '{'), group_concat(seq_num), "
    f"min(typeof(time) = 'real' AND CAST(time * {_TIME_SCALE} AS INTEGER) = time * {_TIME_SCALE}), "
    f"group_concat(CAST(time * {_TIME_SCALE} AS INTEGER)), "
    "CAST(group_concat(data, char(10)) AS BLOB) "
    "FROM events WHERE stream_uid = ? AND seq_num BETWEEN ? AND ?"
)
_ROWS_SQL = "SELECT seq_num, time, data FROM events WHERE stream_uid = ? AND seq_num BETWEEN ? AND ? ORDER BY seq_num"


@dataclass
class EventTable:
    """A stream's events as typed columns, in ``seq_num`` order.

    Attributes
    ----------
    seq_num : ndarray of int64
    time : ndarray of float64
        Epoch seconds.
    columns : dict of str to ndarray or list
        One entry per field, in order of first appearance. An ndarray when
        the field's values allow it without losing what a consumer could
        tell apart:

        - int64: every event holds an integer that fits int64;
        - float64: every value present is a number and some value is a float
          or some event lacks it (``NaN`` where an event lacks the field,
          holds ``null`` or holds ``NaN``);
        - bool: every event holds a boolean.

        Otherwise a list of the plain values, as :func:`stream_events` gives
        them (the ``missing`` marker where an event lacks the field, ``None``
        for ``null``).
    """

    seq_num: np.ndarray
    time: np.ndarray
    columns: dict[str, np.ndarray | list[Any]]

    def __len__(self) -> int:
        return len(self.seq_num)


def event_table(
    db: Database, run_uid: str, stream: str, *, missing: Any = MISSING, chunk_events: int | None = None
) -> EventTable:
    """Read one stream of a run column-wise, in ranges of ``chunk_events`` events.

    Parameters
    ----------
    db : Database
    run_uid : str
        Full uid of the run.
    stream : str
        Stream name; an unknown stream gives an empty table.
    missing : optional
        What stands for an absent field in list columns (default
        :data:`MISSING`).
    chunk_events : int, optional
        Events per range read and decoded at once (bounds the memory beyond
        the result); default :func:`chunk_for` of the stream's length, so
        the memory beyond the result stays a fraction of it at every size.

    Returns
    -------
    EventTable

    Raises
    ------
    BadJSONError, BeamtimeDataError
        As :func:`stream_events`, naming the seq_num.
    """
    uids = db.query(f"SELECT uid FROM streams{indexed_by(db, 'streams', 'run_uid', 'name')} WHERE run_uid = ? AND name = ?",
                    (run_uid, stream))
    if len(uids) != 1:  # no such stream, or (hand-made files) two streams of one name
        return table_from_columns(stream_events(db, run_uid, stream, missing=missing), missing)
    suid = uids[0][0]
    lo, hi = seq_bounds(db, suid)
    if lo is None:
        return EventTable(np.empty(0, np.int64), np.empty(0, np.float64), {})
    if type(lo) is not int or type(hi) is not int or hi - lo >= _MAX_SPAN:
        return table_from_columns(stream_events(db, run_uid, stream, missing=missing), missing)
    if chunk_events is None:
        chunk_events = chunk_for(hi - lo + 1)
    if not _ranges_use_index(db, suid):
        chunk_events = hi - lo + 1  # every range query would scan the table: read it in one
    try:
        return _read_ranges(db, suid, lo, hi, max(1, chunk_events), missing)
    except _Restart:
        return table_from_columns(stream_events(db, run_uid, stream, missing=missing), missing)


def seq_bounds(db: Database, stream_uid: str) -> tuple[Any, Any]:
    """``(min, max)`` of a stream's ``seq_num`` (None, None when it has no events), from the index.

    Two subqueries: SQLite answers a lone ``min()`` or ``max()`` from the
    index at once but scans every event for the two in one select.
    """
    hint = indexed_by(db, "events", "stream_uid", "seq_num")
    row = db.query(
        f"SELECT (SELECT min(seq_num) FROM events{hint} WHERE stream_uid = ?), "
        f"(SELECT max(seq_num) FROM events{hint} WHERE stream_uid = ?)",
        (stream_uid, stream_uid),
    )[0]
    return row[0], row[1]


def table_from_columns(ev: EventColumns, missing: Any = MISSING) -> EventTable:
    """An :class:`EventTable` from plain-values columns (typed where the rules allow)."""
    columns: dict[str, np.ndarray | list[Any]] = {}
    for name, values in ev.columns.items():
        kind, data, _ = _list_part(values, missing)
        columns[name] = values if kind in "og" else data
    return EventTable(ev.seq_num, ev.time, columns)


# ------------------------------------------------------------------ internals
def _fixed(db: Database, sql: str) -> str:
    """A range query on ``events`` walking the (stream_uid, seq_num) index when the file holds statistics."""
    return sql.replace("FROM events WHERE", f"FROM events{indexed_by(db, 'events', 'stream_uid', 'seq_num')} WHERE", 1)



class _Restart(Exception):
    """The stream must be read by stream_events (a broken event, or kinds that do not merge exactly)."""


def _ranges_use_index(db: Database, suid: str) -> bool:
    plan = db.query("EXPLAIN QUERY PLAN " + _fixed(db, _RANGE_SQL), (suid, 0, 0))
    return any("seq_num>" in str(row[-1]).replace(" ", "") for row in plan)


# A part is one field's values in one range: (kind, data, exact list or None).
# kind: "i" int64 array, "f" float64 array (NaN for gaps), "b" bool array,
# "o" list of plain values, "g" gaps only (list of None / missing).
_Part = tuple[str, Any, "list[Any] | None"]


@dataclass
class _Raw:
    first: int
    last: int
    count: int
    seq: np.ndarray | None
    time: np.ndarray | None
    blob: bytes | None


def _fetch(db: Database, suid: str, first: int, last: int) -> _Raw:
    count, n_data, n_objects, seq_text, time_ok, time_text, blob = db.query(_fixed(db, _RANGE_SQL), (suid, first, last))[0]
    if count == 0:
        return _Raw(first, last, 0, None, None, None)
    seq = _ints(seq_text, count)
    times = _ints(time_text, count) if time_ok == 1 else None
    if n_data != count or n_objects != count or seq is None or times is None or not bool(np.all(seq[1:] > seq[:-1])):
        return _Raw(first, last, count, None, None, None)  # the plain decoder reads this range
    return _Raw(first, last, count, seq, times / _TIME_SCALE, blob)


def _ints(text: Any, count: int) -> np.ndarray | None:
    if not isinstance(text, str):
        return None
    with warnings.catch_warnings():
        # A non-integer stops the parse early (and warns): the length tells.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            values = np.fromstring(text, dtype=np.int64, sep=",")
        except ValueError:
            return None
    return values if len(values) == count else None


def _decode(raw: _Raw) -> dict[str, _Part] | None:
    """Decode one range's JSON with Arrow; None when the plain decoder must read it."""
    # Only text of one object per line reaches Arrow: it reads a `null` line as a
    # row of nulls (json gives None, no event) and crashes the process when a
    # `null` line opens one of its blocks. Every event opens with "{" (checked in
    # SQL); a newline inside an event's text (pretty JSON, or hiding a `null`
    # line) goes the plain way too.
    if raw.blob is None or not _one_object_per_line(raw.blob, raw.count):
        return None
    import pyarrow as pa
    import pyarrow.json as pj

    try:
        # Arrow's threads pay off only on large buffers; a short run decodes faster on one.
        threads = len(raw.blob) > _THREADED_BYTES
        table = pj.read_json(pa.BufferReader(raw.blob), read_options=pj.ReadOptions(use_threads=threads))
    except (pa.ArrowException, ValueError):
        return None
    if table.num_rows != raw.count:
        return None  # empty text, or two objects on one event's line
    try:
        names = table.column_names
    except UnicodeDecodeError:
        return None  # a field name that is not UTF-8 (Arrow keeps it as it is): the plain decoder names the event
    parts: dict[str, _Part] = {}
    for name, column in zip(names, table.columns):
        part = _arrow_part(column)
        if part is None:
            return None
        parts[name] = part
    return parts


def _one_object_per_line(blob: bytes, count: int) -> bool:
    """Whether ``blob`` is ``count`` lines, each opening with ``{`` (one pass of NumPy, several times ``bytes.count``)."""
    data = np.frombuffer(blob, np.uint8)
    if not len(data) or data[0] != 0x7B:
        return False
    breaks = np.flatnonzero(data == 0x0A)
    if len(breaks) != count - 1 or (len(breaks) and breaks[-1] == len(data) - 1):
        return False
    return bool(np.all(data[breaks + 1] == 0x7B))


_INT64_LIMIT = 2.0**63
_THREADED_BYTES = 1 << 21


def _arrow_part(column: Any) -> _Part | None:
    import pyarrow as pa

    kind, nulls = column.type, column.null_count
    if pa.types.is_float64(kind) or pa.types.is_int64(kind):
        values = column.to_numpy()  # nulls become NaN (ints with nulls become float64)
        if values.dtype == np.int64:
            return ("i", values, None)
        finite = np.isfinite(values)
        # Non-finite tokens (NaN, Infinity and spellings Python refuses) and
        # integers beyond int64 (which Arrow reads as floats) go the plain way.
        if int(np.count_nonzero(~finite)) != nulls or bool(np.any(np.abs(values[finite]) >= _INT64_LIMIT)):
            return None
        return ("f", values, None)
    if nulls:
        return None  # null and absent differ for booleans and strings
    if pa.types.is_boolean(kind):
        return ("b", column.to_numpy(), None)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        try:
            column.validate(full=True)  # Arrow reads text that is not UTF-8 as it is
        except pa.ArrowInvalid:
            return None  # the plain decoder names the event
        return ("o", column.to_pylist(), None)
    return None  # lists, objects, all-null: the plain decoder keeps them exactly


def _list_part(values: list[Any], missing: Any) -> _Part:
    """Classify one field's plain values (from the plain decoder)."""
    types = set(map(type, values))
    gap_types = {type(None), type(missing)}
    nums = types - gap_types
    if not nums:
        return ("g", values, values)
    if nums == {bool}:
        return ("b", np.array(values, dtype=bool), values) if types == nums else ("o", values, values)
    if nums <= {int, float}:
        try:
            if int in nums:
                ints = np.array([v for v in values if type(v) is int], dtype=np.int64)
        except OverflowError:
            return ("o", values, values)  # beyond int64: consumers tell these apart
        if types == {int}:
            return ("i", ints, values)
        arr = np.array([np.nan if type(v) in gap_types else v for v in values], dtype=np.float64)
        return ("f", arr, values)
    return ("o", values, values)


class _Column:
    """One field being filled range by range."""

    __slots__ = ("kind", "data", "gaps_only")

    def __init__(self, kind: str, data: Any, gaps_only: bool = False) -> None:
        self.kind, self.data, self.gaps_only = kind, data, gaps_only


class _Builder:
    """Preallocated columns for ``capacity`` events, filled one range at a time."""

    def __init__(self, capacity: int, missing: Any) -> None:
        self.capacity, self.missing, self.filled = capacity, missing, 0
        self.seq = np.empty(capacity, np.int64)
        self.time = np.empty(capacity, np.float64)
        self.columns: dict[str, _Column] = {}

    def add(self, seq: np.ndarray, time: np.ndarray, parts: dict[str, _Part]) -> None:
        r0, m = self.filled, len(seq)
        self.seq[r0 : r0 + m] = seq
        self.time[r0 : r0 + m] = time
        for name in self.columns.keys() - parts.keys():
            parts[name] = ("g", None, None)  # a field no event of this range has
        for name, part in parts.items():
            col = self.columns.get(name)
            if col is None:
                col = self.columns[name] = _Column("o", [self.missing] * r0, gaps_only=True)
            self._append(col, part, r0, m)
        self.filled = r0 + m

    def _array(self, kind: str, col: _Column, r0: int, fill: Any) -> None:
        dtype = {"i": np.int64, "f": np.float64, "b": np.bool_}[kind]
        arr: np.ndarray = np.empty(self.capacity, dtype)  # untouched pages cost no memory
        if r0:  # rows already read: gaps only so far ("o"), or the column's values
            arr[:r0] = fill if col.kind == "o" else col.data[:r0]
        col.kind, col.data, col.gaps_only = kind, arr, False

    def _to_list(self, col: _Column, r0: int) -> None:
        if col.kind == "o":
            return
        if col.kind == "f":
            raise _Restart  # NaN may have been a gap, a null or a NaN; floats may have been ints
        col.data, col.kind = col.data[:r0].tolist(), "o"

    def _append(self, col: _Column, part: _Part, r0: int, m: int) -> None:
        kind, data, exact = part
        plain = exact if exact is not None else (data if kind in "og" else None)
        if kind == "g":
            if col.kind in "if":
                if col.kind == "i":
                    self._array("f", col, r0, None)
                col.data[r0 : r0 + m] = np.nan
                return
            self._to_list(col, r0)
            col.data.extend(plain if plain is not None else [self.missing] * m)
            return
        if col.gaps_only:  # a new field, or one no event held so far
            if r0 == 0 and kind != "o":
                self._array(kind, col, 0, None)
            elif kind in "if":
                self._array("f", col, r0, np.nan)  # numbers after gaps: float with NaN
            else:
                col.gaps_only = False
                col.data.extend(plain if plain is not None else data.tolist())
                return
            col.data[r0 : r0 + m] = data
            return
        if col.kind in "if" and kind in "if":
            if col.kind == "i" and kind == "f":
                self._array("f", col, r0, None)
            col.data[r0 : r0 + m] = data
            return
        if col.kind == kind == "b":
            col.data[r0 : r0 + m] = data
            return
        # Mixed kinds: the field becomes a list of exact plain values.
        self._to_list(col, r0)
        if plain is not None:
            col.data.extend(plain)
        elif kind == "f":
            raise _Restart  # an Arrow float range is not exact as plain values
        else:
            col.data.extend(data.tolist())

    def result(self) -> EventTable:
        n = self.filled
        columns: dict[str, np.ndarray | list[Any]] = {}
        for name, col in self.columns.items():
            columns[name] = col.data if col.kind == "o" else col.data[:n]
        return EventTable(self.seq[:n], self.time[:n], columns)


def _read_ranges(db: Database, suid: str, lo: int, hi: int, step: int, missing: Any) -> EventTable:
    builder = _Builder(hi - lo + 1, missing)

    def add(raw: _Raw, parts: dict[str, _Part] | None) -> None:
        if raw.count == 0:
            return
        if parts is None or raw.seq is None or raw.time is None:
            seq, time, parts = _plain_range(db, suid, raw, missing)
        else:
            seq, time = raw.seq, raw.time
        builder.add(seq, time, parts)

    ranges = [(a, min(a + step - 1, hi)) for a in range(lo, hi + 1, step)]
    if len(ranges) == 1:
        raw = _fetch(db, suid, *ranges[0])
        add(raw, _decode(raw))
        return builder.result()
    # Fetch range k+1 (SQLite, GIL released) while range k decodes (Arrow, GIL released).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="resonance-events") as pool:
        pending: tuple[_Raw, Future[dict[str, _Part] | None]] | None = None
        for raw in _fetch_all(db, suid, ranges):
            job = (raw, pool.submit(_decode, raw))
            if pending is not None:
                add(pending[0], pending[1].result())
            pending = job
        if pending is not None:
            add(pending[0], pending[1].result())
    return builder.result()


def _fetch_all(db: Database, suid: str, ranges: list[tuple[int, int]]) -> Iterator[_Raw]:
    for first, last in ranges:
        yield _fetch(db, suid, first, last)


def _plain_range(db: Database, suid: str, raw: _Raw, missing: Any) -> tuple[np.ndarray, np.ndarray, dict[str, _Part]]:
    try:
        rows = db.query(_fixed(db, _ROWS_SQL), (suid, raw.first, raw.last))
    except BadTextError:
        raise _Restart from None  # stream_events names the event whose data is not UTF-8
    try:
        ev = decode_event_rows(db, rows, "", "", missing=missing)
    except BeamtimeError:
        raise _Restart from None  # stream_events raises it again, worded and placed as always
    if len(ev) != raw.count:
        raise _Restart  # a commit between the two queries
    return ev.seq_num, ev.time, {name: _list_part(values, missing) for name, values in ev.columns.items()}
