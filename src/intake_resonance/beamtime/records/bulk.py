"""One stream of many runs read column-wise together: a few SQL queries, one Arrow pass per batch.

:func:`~intake_resonance.beamtime.records.event_table` reads one stream of one
run; asking it for 1 000 short runs costs 1 000 rounds of small queries and
1 000 small JSON decodes. :func:`many_event_tables` reads the same stream of
many runs at once: one query finds every run's stream and its ``seq_num``
span (in groups of at most :data:`MAX_PARAMS` runs), then runs are taken in
order in batches of at most :data:`~.columnar.CHUNK_EVENTS` events (and
:data:`MAX_PARAMS` streams). A batch is one SQL query handing back one
buffer (the batch's event JSON joined by newlines, each event's position,
``seq_num`` and ``time`` as integer text), decoded by the Arrow reader of
:mod:`.columnar` in one call, and copied into columns preallocated for all
the runs together. The next batch is fetched while one decodes. A run longer
than a batch is read in ranges, as :func:`event_table` reads it.

The result is one table of every run's events, run after run, and where
each run's rows start (:attr:`ManyEvents.offsets`); a run's part is a view
(:meth:`ManyEvents.table`). Columns are typed over all the runs together, by
the rules of :class:`~.columnar.EventTable` applied to the whole table: a
field that is int64 in one run and float in another, or absent from another,
is float64 (NaN where a run lacks it) in every run's part.

Whatever a batch's shared decode cannot read exactly (text that is not one
object per event, non-finite numbers, nulls among booleans or strings,
lists, ...) is read again run by run, each run as :func:`event_table` reads
it; a run with a broken event raises the error naming its run, stream and
seq_num (or, with ``errors="skip"``, is left out and listed in
:attr:`ManyEvents.skipped`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import BadJSONError, BadTextError, BeamtimeError
from ..format import Database
from ..plans import indexed_by
from ._values import MAX_PARAMS, MISSING, decode_json, json_groups
from .columnar import (
    _MAX_SPAN,
    _ROWS_SQL,
    _TIME_SCALE,
    CHUNK_EVENTS,
    EventTable,
    _Builder,
    _decode,
    _fetch,
    _fixed,
    _ints,
    _list_part,
    _Part,
    _Raw,
    _Restart,
    event_table,
)
from .events import StreamRecord, decode_event_rows, stream_events

__all__ = ["ManyEvents", "many_event_tables", "many_streams", "many_image_fields", "MAX_PARAMS"]

#: Events per batch of short runs: small enough that fetching one batch overlaps
#: decoding the one before, large enough that Arrow's per-call cost is noise.
BATCH_EVENTS = 16384

def _streams_sql(db: Database) -> str:
    # Lookups name their index when the file carries planner statistics (beamtime.plans).
    on_seq = indexed_by(db, "events", "stream_uid", "seq_num")
    return (
        f"SELECT st.run_uid, st.uid, (SELECT min(seq_num) FROM events{on_seq} WHERE stream_uid = st.uid), "
        f"(SELECT max(seq_num) FROM events{on_seq} WHERE stream_uid = st.uid) "
        f"FROM json_each(?) j CROSS JOIN streams st{indexed_by(db, 'streams', 'run_uid', 'name')} "
        "ON st.run_uid = j.value WHERE st.name = ?"
    )

# One row for a whole batch: the outer loop walks the batch's streams in the order
# given, the inner one each stream's seq_num index, so rows come run by run in
# seq_num order (checked, not trusted). Each stream's upper bound is the span read
# before, so a live run's events committed since do not overflow the columns.
def _batch_sql(db: Database) -> str:
    return (
        "SELECT count(*), group_concat(j.key), group_concat(e.seq_num), "
        f"min(typeof(e.time) = 'real' AND CAST(e.time * {_TIME_SCALE} AS INTEGER) = e.time * {_TIME_SCALE}), "
        f"group_concat(CAST(e.time * {_TIME_SCALE} AS INTEGER)), "
        "CAST(group_concat(e.data, char(10)) AS BLOB) "
        f"FROM json_each(?) j CROSS JOIN events e{indexed_by(db, 'events', 'stream_uid', 'seq_num')} "
        "ON e.stream_uid = json_extract(j.value, '$[0]') "
        "AND e.seq_num BETWEEN json_extract(j.value, '$[1]') AND json_extract(j.value, '$[2]')"
    )


@dataclass
class ManyEvents:
    """One stream of many runs as one typed table, run after run.

    Attributes
    ----------
    runs : list of str
        The runs asked for, in order (a run without the stream has no rows).
    stream : str
    events : EventTable
        Every run's events, in the order of ``runs``, each run's in
        ``seq_num`` order; columns typed over all runs together.
    offsets : ndarray of int64
        ``len(runs) + 1`` row positions: run ``i`` holds rows
        ``offsets[i]:offsets[i + 1]``.
    skipped : dict of str to BeamtimeError
        With ``errors="skip"``: runs left out (no rows) and why.
    """

    runs: list[str]
    stream: str
    events: EventTable
    offsets: np.ndarray
    skipped: dict[str, BeamtimeError] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.events)

    def counts(self) -> np.ndarray:
        """ndarray of int64: events of each run."""
        return np.diff(self.offsets)

    def table(self, i: int) -> EventTable:
        """Run ``i``'s part (views, no copy); columns keep the shared typing."""
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        ev = self.events
        return EventTable(ev.seq_num[a:b], ev.time[a:b], {k: v[a:b] for k, v in ev.columns.items()})


@dataclass
class _Stream:
    pos: int
    run: str
    uid: str | None  # None: the run has no such stream; "" : two of one name (read by event_table)
    lo: Any = None
    hi: Any = None

    @property
    def span(self) -> int:
        return 0 if self.lo is None else int(self.hi) - int(self.lo) + 1


@dataclass
class _Batch:
    streams: list[_Stream]
    raw: _Raw
    keys: np.ndarray | None


def many_event_tables(
    db: Database,
    runs: Sequence[str],
    stream: str = "primary",
    *,
    missing: Any = None,
    errors: str = "raise",
    batch_events: int = BATCH_EVENTS,
) -> ManyEvents:
    """Read one stream of many runs column-wise, in a few queries and one decode per batch.

    Parameters
    ----------
    db : Database
    runs : sequence of str
        Full uids, in the order wanted (repeats are read once each time).
    stream : str
        Stream name; a run without it has no rows.
    missing : optional
        What stands for an absent field in list columns (default ``None``,
        as the Datasets treat a gap; :data:`MISSING` keeps absent apart
        from ``null``).
    errors : {"raise", "skip"}
        What a run with a broken event does: raise (the error names the
        run, stream and seq_num) or leave the run out, listed in
        :attr:`ManyEvents.skipped`.
    batch_events : int
        Events per batch read and decoded at once (default
        :data:`BATCH_EVENTS`; bounds memory beyond the result). A run longer
        than this is read in ranges of :data:`~.columnar.CHUNK_EVENTS`.

    Returns
    -------
    ManyEvents

    Raises
    ------
    BadJSONError, BeamtimeDataError
        With ``errors="raise"``: the first broken run's error.
    """
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', not {errors!r}")
    runs = list(runs)
    streams = _find_streams(db, runs, stream)
    capacity = sum(s.span for s in streams if s.uid)
    try:
        return _read(db, runs, stream, streams, capacity, missing, errors, max(1, batch_events))
    except _Restart:
        return _read_plain(db, runs, stream, streams, missing, errors)


def _find_streams(db: Database, runs: list[str], stream: str) -> list[_Stream]:
    found: dict[str, list[tuple[str, Any, Any]]] = {}
    sql = _streams_sql(db)
    for group in json_groups(runs):
        for run_uid, suid, lo, hi in db.query(sql, (group, stream)):
            found.setdefault(run_uid, []).append((suid, lo, hi))
    out = []
    for pos, run in enumerate(runs):
        rows = found.get(run, [])
        if not rows:
            out.append(_Stream(pos, run, None))
        elif len(rows) > 1:
            out.append(_Stream(pos, run, ""))  # hand-made files: event_table knows what to do
        else:
            suid, lo, hi = rows[0]
            if lo is not None and (type(lo) is not int or type(hi) is not int or hi - lo >= _MAX_SPAN):
                out.append(_Stream(pos, run, ""))
            else:
                out.append(_Stream(pos, run, suid, lo, hi))
    return out


def _plan(streams: list[_Stream], batch_events: int) -> Iterator[list[_Stream] | _Stream]:
    """Batches of short streams (a list), or one stream to be read alone (ranged or by event_table)."""
    batch: list[_Stream] = []
    size = 0
    # The first batch is a quarter size: decoding starts sooner, as nothing overlaps its fetch.
    limit = max(1, batch_events // 4)
    for s in streams:
        if s.uid is None or (s.uid and s.lo is None):
            continue  # no such stream, or no events
        if s.uid == "" or s.span > batch_events:
            if batch:
                yield batch
                batch, size, limit = [], 0, batch_events
            yield s
            continue
        if batch and (size + s.span > limit or len(batch) >= MAX_PARAMS):
            yield batch
            batch, size, limit = [], 0, batch_events
        batch.append(s)
        size += s.span
    if batch:
        yield batch


def _uses_index(db: Database) -> bool:
    plan = db.query("EXPLAIN QUERY PLAN " + _batch_sql(db), (json.dumps([["", 0, 0]]),))
    return any("INDEX" in str(row[-1]) and "seq_num" in str(row[-1]) for row in plan)


def _fetch_batch(db: Database, batch: list[_Stream]) -> _Batch:
    spec = json.dumps([[s.uid, s.lo, s.hi] for s in batch])
    count, key_text, seq_text, time_ok, time_text, blob = db.query(_batch_sql(db), (spec,))[0]
    lo, hi = batch[0].lo, batch[-1].hi
    if count == 0:
        return _Batch(batch, _Raw(lo, hi, 0, None, None, None), np.zeros(0, np.int64))
    keys, seq = _ints(key_text, count), _ints(seq_text, count)
    times = _ints(time_text, count) if time_ok == 1 else None
    # One event per line, each opening with "{", is checked on the bytes by the decoder
    # (a NULL event would be a missing line, a newline inside one an extra line).
    good = (
        isinstance(blob, bytes)
        and keys is not None
        and seq is not None
        and times is not None
    )
    if good:
        assert keys is not None and seq is not None
        dk, ds = np.diff(keys), np.diff(seq)
        good = bool(np.all((dk > 0) | ((dk == 0) & (ds > 0)))) and (len(keys) == 0 or (keys[0] >= 0 and keys[-1] < len(batch)))
    if not good or times is None:
        return _Batch(batch, _Raw(lo, hi, count, None, None, None), None)  # read again run by run
    return _Batch(batch, _Raw(lo, hi, count, seq, times / _TIME_SCALE, blob), keys)


class _Reader:
    """Fills one builder from batches and single streams, keeping runs in order."""

    def __init__(self, db: Database, stream: str, n_runs: int, capacity: int, missing: Any, errors: str) -> None:
        self.db, self.stream, self.missing, self.errors = db, stream, missing, errors
        self.builder = _Builder(capacity, missing)
        self.counts = np.zeros(n_runs, np.int64)
        self.skipped: dict[str, BeamtimeError] = {}

    def add(self, pos: int, seq: np.ndarray, time: np.ndarray, parts: dict[str, _Part]) -> None:
        if len(self.builder.seq) < self.builder.filled + len(seq):
            raise _Restart  # more events than counted (not expected: reads are bounded by the spans)
        self.builder.add(seq, time, parts)
        self.counts[pos] += len(seq)

    def add_batch(self, batch: _Batch, parts: dict[str, _Part] | None) -> None:
        raw = batch.raw
        if raw.count == 0:
            return
        if parts is None or raw.seq is None or raw.time is None or batch.keys is None:
            for s in batch.streams:
                self.add_stream(s)
            return
        self.builder.add(raw.seq, raw.time, parts)
        self.counts[[s.pos for s in batch.streams]] += np.bincount(batch.keys, minlength=len(batch.streams))

    def add_stream(self, s: _Stream, step: int | None = None) -> None:
        """One stream alone: in ranges of ``step`` events (default: one range), each decoded by Arrow if it can."""
        try:
            if not s.uid:
                self._add_table(s, event_table(self.db, s.run, self.stream, missing=self.missing))
                return
            step = step or s.span
            for first in range(int(s.lo), int(s.hi) + 1, step):
                raw = _fetch(self.db, s.uid, first, min(first + step - 1, int(s.hi)))
                if raw.count == 0:
                    continue
                parts = _decode(raw)
                if parts is None or raw.seq is None or raw.time is None:
                    seq, time, parts = self._plain(s, raw)
                else:
                    seq, time = raw.seq, raw.time
                self.add(s.pos, seq, time, parts)
        except BeamtimeError as exc:
            if self.errors != "skip":
                raise
            self.skipped[s.run] = exc
            self._undo(s)

    def _undo(self, s: _Stream) -> None:
        # Ranges of a stream already added cannot be taken back from the builder: start over plainly.
        if self.counts[s.pos]:
            raise _Restart

    def _plain(self, s: _Stream, raw: _Raw) -> tuple[np.ndarray, np.ndarray, dict[str, _Part]]:
        try:
            rows = self.db.query(_fixed(self.db, _ROWS_SQL), (s.uid, raw.first, raw.last))
        except BadTextError:
            # Event text that is not UTF-8: stream_events raises the error naming run, stream and seq_num.
            stream_events(self.db, s.run, self.stream, missing=self.missing)
            raise
        ev = decode_event_rows(self.db, rows, s.run, self.stream, missing=self.missing)  # names run, stream, seq_num
        return ev.seq_num, ev.time, {name: _list_part(values, self.missing) for name, values in ev.columns.items()}

    def _add_table(self, s: _Stream, table: EventTable) -> None:
        if not len(table):
            return
        parts = {name: _as_part(values, self.missing) for name, values in table.columns.items()}
        if len(self.builder.seq) < self.builder.filled + len(table):
            self.builder = _grown(self.builder, len(table))
        self.add(s.pos, table.seq_num, table.time, parts)


def _grown(builder: _Builder, extra: int) -> _Builder:
    # A stream read by event_table was not counted ahead (hand-made files): make room.
    bigger = _Builder(builder.capacity + extra, builder.missing)
    if builder.filled:
        done = builder.result()
        bigger.add(done.seq_num, done.time, {k: _as_part(v, builder.missing) for k, v in done.columns.items()})
    return bigger


def _as_part(values: np.ndarray | list[Any], missing: Any) -> _Part:
    if isinstance(values, np.ndarray):
        return ({"i": "i", "f": "f", "b": "b"}.get(values.dtype.kind, "o"), values, None)
    return _list_part(values, missing)


def _read(
    db: Database, runs: list[str], stream: str, streams: list[_Stream], capacity: int, missing: Any, errors: str, batch_events: int
) -> ManyEvents:
    reader = _Reader(db, stream, len(runs), capacity, missing, errors)
    if not _uses_index(db):
        # Hand-made files without the seq_num index: a batch would scan the table once per stream anyway.
        for s in streams:
            if s.uid is not None and (s.uid == "" or s.lo is not None):
                reader.add_stream(s, CHUNK_EVENTS)
        return _result(reader, runs, stream)
    items = list(_plan(streams, batch_events))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="resonance-many") as pool:
        pending: tuple[_Batch, Future[dict[str, _Part] | None]] | None = None
        for item in items:
            if isinstance(item, _Stream):
                if pending is not None:
                    reader.add_batch(pending[0], pending[1].result())
                    pending = None
                reader.add_stream(item, max(batch_events, CHUNK_EVENTS))
                continue
            batch = _fetch_batch(db, item)
            job = (batch, pool.submit(_decode, batch.raw))
            if pending is not None:
                reader.add_batch(pending[0], pending[1].result())
            pending = job
        if pending is not None:
            reader.add_batch(pending[0], pending[1].result())
    return _result(reader, runs, stream)


def _result(reader: _Reader, runs: list[str], stream: str) -> ManyEvents:
    offsets = np.zeros(len(runs) + 1, np.int64)
    np.cumsum(reader.counts, out=offsets[1:])
    return ManyEvents(runs, stream, reader.builder.result(), offsets, reader.skipped)


def _read_plain(
    db: Database, runs: list[str], stream: str, streams: list[_Stream], missing: Any, errors: str
) -> ManyEvents:
    """Every run through the plain decoder, typed once over all of them (kinds that do not merge exactly)."""
    marker = MISSING if missing is None else missing
    seqs: list[np.ndarray] = []
    times: list[np.ndarray] = []
    columns: dict[str, list[Any]] = {}
    counts = np.zeros(len(runs), np.int64)
    skipped: dict[str, BeamtimeError] = {}
    total = 0
    for s in streams:
        if s.uid is None:
            continue
        try:
            ev = stream_events(db, s.run, stream, missing=marker)
        except BeamtimeError as exc:
            if errors != "skip":
                raise
            skipped[s.run] = exc
            continue
        n = len(ev)
        for name in columns.keys() - ev.columns.keys():
            columns[name].extend([marker] * n)
        for name, values in ev.columns.items():
            columns.setdefault(name, [marker] * total).extend(values)
        seqs.append(ev.seq_num)
        times.append(ev.time)
        counts[s.pos] = n
        total += n
    typed: dict[str, np.ndarray | list[Any]] = {}
    for name, values in columns.items():
        if missing is None:
            values = [None if v is MISSING else v for v in values]
        kind, data, _ = _list_part(values, missing)
        typed[name] = values if kind in "og" else data
    seq = np.concatenate(seqs) if seqs else np.empty(0, np.int64)
    time = np.concatenate(times) if times else np.empty(0, np.float64)
    offsets = np.zeros(len(runs) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return ManyEvents(runs, stream, EventTable(seq, time, typed), offsets, skipped)



# ------------------------------------------------------------ what else a many-run read needs


def many_streams(db: Database, runs: Sequence[str], stream: str) -> dict[str, StreamRecord]:
    """The stream named ``stream`` of each run that has exactly one (descriptors decoded), in a few queries.

    Runs without it, or (hand-made files) with two of that name, are left out.

    Raises
    ------
    BadJSONError
        A stream's ``data_keys`` is not a JSON object (naming run and stream).
    """
    out: dict[str, StreamRecord] = {}
    twice: set[str] = set()
    sql = (
        "SELECT st.run_uid, st.uid, st.name, st.data_keys, st.time_created FROM json_each(?) j "
        f"CROSS JOIN streams st{indexed_by(db, 'streams', 'run_uid', 'name')} ON st.run_uid = j.value WHERE st.name = ?"
    )
    decoded: dict[Any, dict[str, dict[str, Any]]] = {}  # runs of one plan share their descriptors' text
    for group in json_groups(runs):
        for run_uid, suid, name, data_keys, created in db.query(sql, (group, stream)):
            if run_uid in out:
                twice.add(run_uid)
            known = decoded.get(data_keys) if isinstance(data_keys, str) else None
            if known is None:
                keys = decode_json(data_keys, {}, db, "stream data_keys", run=run_uid, stream=name)
                if not isinstance(keys, dict):
                    raise BadJSONError(
                        f"stream data_keys must be a JSON object, found {type(keys).__name__}", db.path, run=run_uid, stream=name
                    )
                known = {a: (v if isinstance(v, dict) else {}) for a, v in keys.items()}
                if isinstance(data_keys, str):
                    decoded[data_keys] = known
            out[run_uid] = StreamRecord(suid, name, known, created)
    for run_uid in twice:
        del out[run_uid]
    return out


def many_image_fields(db: Database, runs: Sequence[str], stream: str, n_events: int) -> dict[str, list[str]]:
    """Field names with frames in ``image_refs`` for ``stream`` of each run (sorted), in a few queries.

    ``n_events`` (the runs' events together) picks the cheaper join order,
    as :func:`~intake_resonance.beamtime.records.image_fields` does.
    """
    (max_ref,) = db.query("SELECT COALESCE(max(id), 0) FROM image_refs")[0]
    out: dict[str, list[str]] = {}
    if not max_ref:
        return out
    if max_ref <= n_events:
        sql = (
            f"SELECT DISTINCT s.run_uid, ir.field_name FROM image_refs ir CROSS JOIN events e{indexed_by(db, 'events', 'uid')} "
            "ON e.uid = ir.event_uid "
            "CROSS JOIN streams s ON s.uid = e.stream_uid WHERE s.name = ? AND s.run_uid IN (SELECT value FROM json_each(?))"
        )
    else:
        sql = (
            f"SELECT DISTINCT s.run_uid, ir.field_name FROM streams s{indexed_by(db, 'streams', 'run_uid')} "
            f"CROSS JOIN events e{indexed_by(db, 'events', 'stream_uid')} ON e.stream_uid = s.uid "
            f"CROSS JOIN image_refs ir{indexed_by(db, 'image_refs', 'event_uid')} ON ir.event_uid = e.uid "
            "WHERE s.name = ? AND s.run_uid IN (SELECT value FROM json_each(?))"
        )
    for group in json_groups(runs):
        for run_uid, name in db.query(sql, (stream, group)):
            out.setdefault(run_uid, []).append(name)
    return {k: sorted(v) for k, v in out.items()}
