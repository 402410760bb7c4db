"""What a listing shows of a run: its counts, times as text, an event field's range.

Each count is defined here once, and every face shows these numbers
(``intake-resonance ls``/``show``, intake entry metadata, the runs table,
Dataset attributes, the demo summaries):

- **events of a stream**: the stream's committed rows in ``events``. A run
  still being written shows the events committed so far. This is also a run
  Dataset's ``time`` length.
- **num_events**: the events of all the run's streams together (a baseline
  stream's readings count too). The beamline's ``runs.num_events`` column
  means the same but stays 0 until the run closes; the facade's
  ``Run.num_events`` keeps that column as it is.
- **frames of a stream**: its rows in ``image_refs`` (every image field), the
  frames a reader can load; frames in the store that no committed row
  references are not part of the run.

Times shown as text are ISO 8601 in UTC (:func:`iso_utc`); tables hold
``datetime64[ns, UTC]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ..format import Database
from ..plans import indexed_by
from ._values import _is_int, json_groups
from .query import RunQuery
from .runs import RunRecord, where_clause

__all__ = ["RunCounts", "run_counts", "events_per_run", "counts_table", "counts_columns", "field_ranges", "iso_utc", "run_summary"]


def iso_utc(t: float | None) -> str | None:
    """Epoch seconds as ISO 8601 text in UTC (``2026-03-05T08:00:00+00:00``); None stays None."""
    return None if t is None else datetime.fromtimestamp(float(t), tz=UTC).isoformat()


@dataclass(frozen=True)
class RunCounts:
    """A run's committed events and referenced frames, per stream.

    Attributes
    ----------
    events : dict of str to int
        Committed events per stream, in the order the streams were opened.
    frames : dict of str to int
        ``image_refs`` rows per stream (streams without frames are left out).
    """

    events: dict[str, int] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)

    @property
    def num_events(self) -> int:
        """int: events of all streams together."""
        return sum(self.events.values())

    def stream_events(self, stream: str = "primary") -> int:
        """Committed events of ``stream`` (0 when the run has no such stream)."""
        return self.events.get(stream, 0)

    def stream_frames(self, stream: str = "primary") -> int:
        """Frames referenced by ``stream``'s events (0 when none)."""
        return self.frames.get(stream, 0)


# Each stream's seq_num span from the (stream_uid, seq_num) index: two lookups, however long.
_SPANS = (
    "SELECT st.run_uid, st.name, st.uid, (SELECT min(seq_num) FROM events WHERE stream_uid = st.uid), "
    "(SELECT max(seq_num) FROM events WHERE stream_uid = st.uid) FROM streams st"
)


def _spans_sql(db: Database) -> str:
    """:data:`_SPANS` for lookups by run, its plan fixed when the file holds statistics (:mod:`..plans`)."""
    e_hint = indexed_by(db, "events", "stream_uid", "seq_num")
    return _SPANS.replace("FROM events WHERE", f"FROM events{e_hint} WHERE").replace(
        "FROM streams st", "FROM streams st" + indexed_by(db, "streams", "run_uid"))


def _event_counts(db: Database, streams: list[tuple[Any, ...]], runs: dict[str, tuple[Any, Any]]) -> dict[str, dict[str, int]]:
    """Events per stream of each run from ``(run_uid, name, stream_uid, min_seq, max_seq)`` rows.

    Numbers start at 1 and count on across a run's streams, so in a closed
    run whose spans add up to its ``num_events`` column every stream is
    contiguous and its span is its count. Otherwise (a live run, a gap, a
    hand-made file) that run's streams are counted on the index.
    """
    spans: dict[str, list[tuple[str, str, int | None]]] = {}
    for run_uid, name, stream_uid, lo, hi in streams:
        # None: seq_num that is not an integer (a damaged file) spans nothing; count rows instead.
        span = 0 if lo is None or hi is None else int(hi) - int(lo) + 1 if _is_int(lo) and _is_int(hi) else None
        spans.setdefault(run_uid, []).append((name, stream_uid, span))
    out: dict[str, dict[str, int]] = {}
    for run_uid, items in spans.items():
        num_events, time_stop = runs.get(run_uid, (None, None))
        exact = all(span is not None for _, _, span in items)
        if exact and time_stop is not None and num_events == sum(span or 0 for _, _, span in items):
            out[run_uid] = {name: span or 0 for name, _, span in items}
        else:
            out[run_uid] = {
                name: span if span == 0 else int(db.query("SELECT count(*) FROM events WHERE stream_uid = ?", (stream_uid,))[0][0])
                for name, stream_uid, span in items
            }
    return out


def run_counts(db: Database, run_uid: str) -> RunCounts:
    """Count one run's events and frames per stream (streams in the order they were opened).

    Cheap for long runs: spans from the ``seq_num`` index (see
    :func:`counts_table`). Frames are counted walking whichever is shorter,
    the stream's events or ``image_refs``.
    """
    streams = db.query(_spans_sql(db) + " WHERE st.run_uid = ? ORDER BY st.time_created, st.rowid", (run_uid,))
    runs = {uid: (n, stop) for uid, n, stop in db.query(
        f"SELECT uid, num_events, time_stop FROM runs{indexed_by(db, 'runs', 'uid')} WHERE uid = ?", (run_uid,))}
    events = _event_counts(db, streams, runs).get(run_uid, {})
    frames: dict[str, int] = {}
    (max_ref,) = db.query("SELECT COALESCE(max(id), 0) FROM image_refs")[0]  # >= its row count, O(log n)
    for _, name, uid, _, _ in streams:
        n = events[name]
        if n and max_ref:
            # CROSS JOIN fixes SQLite's join order: walk the shorter side.
            e_by, ir_by = indexed_by(db, "events", "uid"), indexed_by(db, "image_refs", "event_uid")
            if e_by or ir_by:  # the file's statistics must not choose the plan: the stream's events, then their frames
                order = f"events e{indexed_by(db, 'events', 'stream_uid')} CROSS JOIN image_refs ir{ir_by}"
            else:
                order = "image_refs ir CROSS JOIN events e" if max_ref <= n else "events e CROSS JOIN image_refs ir"
            (k,) = db.query(f"SELECT count(*) FROM {order} ON ir.event_uid = e.uid WHERE e.stream_uid = ?", (uid,))[0]
            if k:
                frames[name] = int(k)
    return RunCounts(events, frames)


def events_per_run(db: Database, uids: list[str] | tuple[str, ...]) -> dict[str, int]:
    """``num_events`` (committed events of all streams) of each run, as :func:`run_counts` counts them, in a few queries.

    Runs without streams (or that do not exist) are left out (their count is 0).
    """
    out: dict[str, int] = {}
    spans = _spans_sql(db) + " WHERE st.run_uid IN (SELECT value FROM json_each(?)) ORDER BY st.time_created, st.rowid"
    sql = f"SELECT uid, num_events, time_stop FROM runs{indexed_by(db, 'runs', 'uid')} WHERE uid IN (SELECT value FROM json_each(?))"
    for param in json_groups(uids):
        streams = db.query(spans, (param,))
        runs = {uid: (n, stop) for uid, n, stop in db.query(sql, (param,))}
        out.update((uid, sum(per.values())) for uid, per in _event_counts(db, streams, runs).items())
    return out


# Index entries one SQLite b-tree lookup costs about as much as counting (measured: ~12).
_LOOKUP_COST = 25


def counts_table(db: Database, query: RunQuery | None = None) -> dict[str, RunCounts]:
    """:class:`RunCounts` of every run matching ``query``.

    Whichever is cheaper: when the beamtime's streams are short (fewer than
    about 25 events each on average), one pass over the stream index counts
    every event; otherwise a closed run whose streams' ``seq_num`` spans add
    up to its ``num_events`` column is counted from the spans (two index
    lookups per stream, however long the run) and other runs (live ones,
    gaps) on the index. Both give the committed events. Streams appear in
    the order they were written. Runs without streams are left out (their
    counts are all 0).
    """
    streams, events, frames = _count_parts(db, query)
    out: dict[str, RunCounts] = {}
    for run_uid, name, stream_uid, *_ in streams:
        counts = out.get(run_uid)
        if counts is None:
            counts = out[run_uid] = RunCounts(events[run_uid], {})
        if stream_uid in frames:
            counts.frames[name] = frames[stream_uid]
    return out


def _count_parts(
    db: Database, query: RunQuery | None
) -> tuple[list[tuple[Any, ...]], dict[str, dict[str, int]], dict[Any, int]]:
    """The streams (run_uid, name, uid, ...), events per stream name of each run, and frames per stream uid."""
    where, params = where_clause(db, query)
    # The runs are joined only to apply criteria: the whole beamtime needs streams alone.
    join = " JOIN runs r ON r.uid = st.run_uid LEFT JOIN samples s ON s.id = r.sample_id" + where if where else ""
    (n_streams,) = db.query("SELECT count(*) FROM streams")[0]
    (max_event,) = db.query("SELECT COALESCE(max(rowid), 0) FROM events")[0]  # >= its row count, O(log n)
    if max_event <= _LOOKUP_COST * n_streams:
        # Short streams: one pass over the stream index counts them all, cheaper than two lookups each.
        streams = db.query("SELECT st.run_uid, st.name, st.uid FROM streams st" + join + " ORDER BY st.rowid", params)
        per_stream = dict(db.query("SELECT stream_uid, count(*) FROM events GROUP BY stream_uid"))
        events: dict[str, dict[str, int]] = {}
        for run_uid, name, stream_uid in streams:
            events.setdefault(run_uid, {})[name] = int(per_stream.get(stream_uid, 0))
    else:
        streams = db.query(_SPANS + join + " ORDER BY st.rowid", params)
        runs = {uid: (n, stop) for uid, n, stop in db.query("SELECT uid, num_events, time_stop FROM runs")}
        events = _event_counts(db, streams, runs)
    # Every frame reference once, each finding its event's stream by the event's primary key.
    frames = dict(db.query(
        "SELECT (SELECT stream_uid FROM events e WHERE e.uid = ir.event_uid) su, count(*) FROM image_refs ir GROUP BY su"
    ))
    return streams, events, frames


def counts_columns(
    db: Database, uids: list[str], query: RunQuery | None = None, stream: str = "primary"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``num_events``, ``stream_events`` and ``frames`` of ``stream`` for each of ``uids``, as arrays.

    The numbers :func:`counts_table` gives (``RunCounts.num_events``,
    ``stream_events(stream)``, ``stream_frames(stream)``; 0 for a run
    without streams), without a record per run: what the runs table needs.
    ``uids`` are runs matching ``query``.
    """
    streams, events, frames = _count_parts(db, query)
    n = len(uids)
    index = {u: i for i, u in enumerate(uids)}
    num, per_stream, n_frames = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    for run_uid, per in events.items():
        i = index.get(run_uid)
        if i is not None:
            num[i] = sum(per.values())
            per_stream[i] = per.get(stream, 0)
    for run_uid, name, stream_uid, *_ in streams:
        if name == stream and stream_uid in frames:
            i = index.get(run_uid)
            if i is not None:
                n_frames[i] = frames[stream_uid]
    return num, per_stream, n_frames


def field_ranges(
    db: Database, field_name: str, stream: str = "primary", query: RunQuery | None = None
) -> dict[str, tuple[float, float]]:
    """``(min, max)`` of a numeric event field per run, computed in SQLite (no event is decoded in Python).

    Runs whose ``stream`` never holds a number in ``field_name`` are left
    out; events whose JSON does not parse are skipped (:func:`~intake_resonance.tools.check`
    reports them).
    """
    where, params = where_clause(db, query)
    path = '$."' + field_name.replace('"', '""') + '"'
    value = "CASE WHEN json_valid(e.data) AND json_type(e.data, ?) IN ('integer', 'real') THEN json_extract(e.data, ?) END"
    rows = db.query(
        f"SELECT st.run_uid, min({value}), max({value}) FROM runs r LEFT JOIN samples s ON s.id = r.sample_id "
        "JOIN streams st ON st.run_uid = r.uid AND st.name = ? JOIN events e ON e.stream_uid = st.uid"
        + where
        + " GROUP BY st.run_uid",
        [path, path, path, path, stream, *params],
    )
    return {uid: (float(lo), float(hi)) for uid, lo, hi in rows if lo is not None}


def run_summary(db: Database, run: RunRecord, stream: str = "primary", counts: RunCounts | None = None) -> dict[str, Any]:
    """A run as catalog entries describe it: plan, sample, ISO times, status, counts, operator.

    Keys: ``plan_name``, ``sample_name``, ``time_start``, ``time_stop`` (ISO
    8601 UTC text; None while open), ``exit_status``, ``num_events`` (all
    streams), ``stream_events`` and ``frames`` (of ``stream``, what its
    Dataset holds), ``operator``.
    """
    counts = run_counts(db, run.uid) if counts is None else counts
    return {
        "plan_name": run.plan_name,
        "sample_name": run.sample_name,
        "time_start": iso_utc(run.time_start),
        "time_stop": iso_utc(run.time_stop),
        "exit_status": run.exit_status,
        "num_events": counts.num_events,
        "stream_events": counts.stream_events(stream),
        "frames": counts.stream_frames(stream),
        "operator": run.operator,
    }
