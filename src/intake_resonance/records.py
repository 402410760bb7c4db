"""SQL to plain values: runs, samples, streams, event columns and frame maps.

Every function takes a :class:`~intake_resonance.format.Database` and returns
plain Python / NumPy values; no other layer writes SQL. Criteria always travel
as SQL parameters.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np
import orjson

from .errors import BadJSONError, BeamtimeDataError, FrameMismatchError, RunNotFoundError
from .format import Database

__all__ = [
    "MISSING",
    "SampleRecord",
    "RunRecord",
    "StreamRecord",
    "EventColumns",
    "FrameRefs",
    "RunQuery",
    "epoch_seconds",
    "list_uids",
    "runs_table",
    "list_runs",
    "get_run",
    "recent_runs",
    "runs_by_sample",
    "match_uids",
    "resolve_uid",
    "get_sample",
    "list_streams",
    "stream_events",
    "image_fields",
    "frame_refs",
    "decode_json",
]


class _Missing:
    """Marks a field absent from an event (distinct from a JSON ``null``)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        return "MISSING"


MISSING = _Missing()


def _loads(text: str | bytes) -> Any:
    # The beamline writes with ``json.dumps``, which spells NaN and infinite
    # readings ``NaN``/``Infinity``: Python's decoder takes them, orjson does not.
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # a json.JSONDecodeError (ValueError) if truly broken


def decode_json(text: str | bytes | None, default: Any, db: Database, what: str, **where: Any) -> Any:
    """Decode one JSON column value; NULL or empty gives ``default``.

    Raises
    ------
    BadJSONError
        Naming the file, ``what`` column and ``where`` it sits.
    """
    if text is None or text == "" or text == b"":
        return default
    try:
        return _loads(text)
    except ValueError as exc:
        raise BadJSONError(f"{what} is not valid JSON ({exc})", db.path, **where) from exc


# ---------------------------------------------------------------------- samples
@dataclass(frozen=True)
class SampleRecord:
    """One row of ``samples``, JSON columns decoded."""

    id: int
    name: str
    formula: str | None
    serial: str | None
    tags: list[str]
    beamline_pos: str | None
    extra: dict[str, Any]


_SAMPLE_SQL = "SELECT id, name, formula, serial, tags, beamline_pos, extra FROM samples WHERE id = ?"


def get_sample(db: Database, sample_id: int | None) -> SampleRecord | None:
    """Return the sample with this id, or None when there is none (or it was deleted)."""
    if sample_id is None:
        return None
    rows = db.query(_SAMPLE_SQL, (sample_id,))
    if not rows:
        return None
    sid, name, formula, serial, tags, pos, extra = rows[0]
    where = {"field": f"samples.id={sid}"}
    tag_list = decode_json(tags, [], db, "sample tags", **where)
    extra_dict = decode_json(extra, {}, db, "sample extra", **where)
    # Other JSON types would be split or rejected by list()/dict(): name the row instead.
    if tag_list is not None and not isinstance(tag_list, list):
        raise BadJSONError(
            f"sample tags must be a JSON list, found {type(tag_list).__name__}", db.path, **where
        )
    if extra_dict is not None and not isinstance(extra_dict, dict):
        raise BadJSONError(
            f"sample extra must be a JSON object, found {type(extra_dict).__name__}", db.path, **where
        )
    return SampleRecord(
        id=sid,
        name=name,
        formula=formula,
        serial=serial,
        tags=list(tag_list or []),
        beamline_pos=pos,
        extra=dict(extra_dict or {}),
    )


# ------------------------------------------------------------------------- runs
@dataclass(frozen=True)
class RunRecord:
    """One row of ``runs`` with its sample's name; metadata stays JSON text
    until :meth:`metadata` is called, so listing many runs stays cheap."""

    uid: str
    plan_name: str
    time_start: float
    time_stop: float | None
    exit_status: str | None
    num_events: int
    operator: str | None
    metadata_json: str | None
    sample_id: int | None
    sample_name: str | None

    def metadata(self, db: Database) -> dict[str, Any]:
        """The decoded run metadata (an empty dict when NULL)."""
        value = decode_json(self.metadata_json, {}, db, "run metadata", run=self.uid)
        return value if isinstance(value, dict) else {"metadata": value}


_RUN_SELECT = (
    "SELECT r.uid, r.plan_name, r.time_start, r.time_stop, r.exit_status, "
    "COALESCE(r.num_events, 0), r.operator, r.metadata, r.sample_id, s.name "
    "FROM runs r LEFT JOIN samples s ON s.id = r.sample_id"
)


_EXACT = {"plan_name": "r.plan_name", "sample": "s.name", "exit_status": "r.exit_status", "operator": "r.operator"}


def epoch_seconds(value: Any) -> float:
    """A time given as epoch seconds, ``datetime``, ``numpy.datetime64`` or ISO 8601 text -> epoch seconds.

    Times without a time zone are taken as UTC (as the Datasets' ``time``).
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot read {value!r} as a time (use ISO 8601, e.g. '2026-03-05T09:00')") from exc
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.timestamp()


@dataclass(frozen=True)
class RunQuery:
    """Criteria narrowing the runs of a beamtime; every value becomes a SQL parameter.

    Built with :meth:`narrow`; each call adds criteria that all must hold, so
    chained searches narrow further.

    Criteria
    --------
    plan_name, sample, exit_status, operator
        Exact match (``sample`` is the sample's name); a list matches any of
        its values; ``None`` matches NULL (e.g. ``exit_status=None``: runs
        still open).
    since, until
        Bounds on ``time_start`` (``since`` inclusive, ``until`` exclusive),
        as accepted by :func:`epoch_seconds`.
    text
        Substring of the uid, plan, sample name, operator or metadata text.
    metadata
        A dict of exact matches on top-level keys of the run metadata.
    """

    criteria: tuple[tuple[str, Any], ...] = ()

    def narrow(self, metadata: dict[str, Any] | None = None, **criteria: Any) -> RunQuery:
        """A new query with these criteria added; unknown names are metadata keys."""
        items = list(self.criteria)
        for key, value in criteria.items():
            if key in ("since", "until"):
                items.append((key, epoch_seconds(value)))
            elif key in _EXACT or key == "text":
                items.append((key, tuple(value) if isinstance(value, (list, tuple, set)) else value))
            else:
                items.append((f"metadata.{key}", value))
        for key, value in (metadata or {}).items():
            items.append((f"metadata.{key}", value))
        return RunQuery(tuple(items))

    def as_dict_list(self) -> list[dict[str, Any]]:
        """The criteria as plain dicts (for catalog arguments and YAML)."""
        out = []
        for key, value in self.criteria:
            if key.startswith("metadata."):
                out.append({"metadata": {key[len("metadata."):]: value}})
            else:
                out.append({key: list(value) if isinstance(value, tuple) else value})
        return out

    @classmethod
    def from_dicts(cls, criteria: Any) -> RunQuery:
        """Build from a dict or a list of dicts of criteria (see :meth:`narrow`)."""
        query = cls()
        for item in [criteria] if isinstance(criteria, dict) else list(criteria or []):
            query = query.narrow(**item)
        return query

    def where(self) -> tuple[str, list[Any]]:
        """The WHERE clause (possibly empty) and its parameters."""
        clauses: list[str] = []
        params: list[Any] = []
        for key, value in self.criteria:
            if key in _EXACT:
                column = _EXACT[key]
                values = value if isinstance(value, tuple) else (value,)
                alts = [f"{column} IS NULL" if v is None else f"{column} = ?" for v in values]
                params += [v for v in values if v is not None]
                clauses.append("(" + " OR ".join(alts or ["0"]) + ")")
            elif key == "since":
                clauses.append("r.time_start >= ?")
                params.append(value)
            elif key == "until":
                clauses.append("r.time_start < ?")
                params.append(value)
            elif key == "text":
                pattern = "%" + _like_escape(str(value)) + "%"
                fields = ("r.uid", "r.plan_name", "s.name", "r.operator", "r.metadata")
                clauses.append("(" + " OR ".join(f"{f} LIKE ? ESCAPE '\\'" for f in fields) + ")")
                params += [pattern] * len(fields)
            else:
                # The JSON path is a parameter too; quoting the key keeps dots in it literal.
                name = key[len("metadata."):]
                clauses.append("json_extract(r.metadata, ?) IS ?")
                params.append('$."' + name.replace('"', '""') + '"')
                params.append(_sql_json_value(value))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _sql_json_value(value: Any) -> Any:
    # json_extract returns booleans as 0/1 and objects/arrays as JSON text.
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_run_values(db: Database, uid: str, time_start: Any, time_stop: Any, num_events: Any) -> None:
    """Refuse run rows whose numeric columns hold something else (hand-edited files)."""
    for column, value, nullable in (
        ("time_start", time_start, False),
        ("time_stop", time_stop, True),
        ("num_events", num_events, False),
    ):
        if not (_is_number(value) or (nullable and value is None)):
            raise BeamtimeDataError(f"runs.{column} must be a number, found {value!r}", db.path, run=uid)


def _run_records(db: Database, rows: list[tuple[Any, ...]]) -> list[RunRecord]:
    out = []
    for row in rows:
        _check_run_values(db, row[0], row[2], row[3], row[5])
        out.append(RunRecord(*row))
    return out


def list_runs(db: Database, query: RunQuery | None = None) -> list[RunRecord]:
    """All runs matching ``query``, oldest first (ties broken by uid)."""
    where, params = (query or RunQuery()).where()
    rows = db.query(_RUN_SELECT + where + " ORDER BY r.time_start, r.uid", params)
    return _run_records(db, rows)


# Ties in time_start: the row inserted last counts as newest.
_NEWEST_FIRST = " ORDER BY r.time_start DESC, r.rowid DESC"


def recent_runs(db: Database, n: int) -> list[RunRecord]:
    """The ``n`` runs that started last, newest first.

    A negative ``n`` means no limit, as SQLite reads ``LIMIT``.
    """
    rows = db.query(_RUN_SELECT + _NEWEST_FIRST + " LIMIT ?", (n,))
    return _run_records(db, rows)


def runs_by_sample(db: Database, name: str) -> list[RunRecord]:
    """Runs whose sample is named exactly ``name``, newest first."""
    rows = db.query(_RUN_SELECT + " WHERE s.name = ?" + _NEWEST_FIRST, (name,))
    return _run_records(db, rows)


def list_uids(db: Database, query: RunQuery | None = None) -> list[str]:
    """Uids of the runs matching ``query``, oldest first; one light query."""
    where, params = (query or RunQuery()).where()
    rows = db.query(
        "SELECT r.uid FROM runs r LEFT JOIN samples s ON s.id = r.sample_id" + where + " ORDER BY r.time_start, r.uid",
        params,
    )
    return [r[0] for r in rows]


def runs_table(db: Database, query: RunQuery | None = None) -> dict[str, list[Any]]:
    """Columns of the runs matching ``query`` (oldest first), from a single query.

    Keys: uid, plan_name, sample, time_start, time_stop, exit_status,
    num_events, operator (times in epoch seconds, NULL as None).
    """
    where, params = (query or RunQuery()).where()
    rows = db.query(
        "SELECT r.uid, r.plan_name, s.name, r.time_start, r.time_stop, r.exit_status, "
        "COALESCE(r.num_events, 0), r.operator FROM runs r LEFT JOIN samples s ON s.id = r.sample_id"
        + where
        + " ORDER BY r.time_start, r.uid",
        params,
    )
    names = ("uid", "plan_name", "sample", "time_start", "time_stop", "exit_status", "num_events", "operator")
    for row in rows:
        _check_run_values(db, row[0], row[3], row[4], row[6])
    columns = list(zip(*rows)) if rows else [()] * len(names)
    return {name: list(col) for name, col in zip(names, columns)}


def get_run(db: Database, uid: str) -> RunRecord | None:
    """The run with exactly this uid, or None."""
    rows = db.query(_RUN_SELECT + " WHERE r.uid = ?", (uid,))
    return _run_records(db, rows)[0] if rows else None


def resolve_uid(db: Database, key: str, query: RunQuery | None = None, *, min_prefix: int = 6) -> str:
    """Turn a full uid or a unique uid prefix (``min_prefix`` characters or more) into a uid.

    Raises
    ------
    RunNotFoundError
        No run matches, the prefix is too short, or it is ambiguous (the
        message lists the matches).
    """
    key = str(key).strip().lower()
    if len(key) < min_prefix:
        raise RunNotFoundError(
            f"{key!r} is too short to identify a run: give the uid or at least {min_prefix} of its characters",
            db.path,
            run=key,
        )
    matches = match_uids(db, key, query)
    if key in matches:
        return key
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RunNotFoundError("no run has this uid or uid prefix", db.path, run=key)
    raise RunNotFoundError(f"uid prefix is ambiguous; it matches {', '.join(matches)}", db.path, run=key)


def match_uids(db: Database, prefix: str, query: RunQuery | None = None) -> list[str]:
    """Uids starting with ``prefix`` (among runs matching ``query``), sorted."""
    where, params = (query or RunQuery()).where()
    escaped = _like_escape(prefix)
    clause = (" AND " if where else " WHERE ") + "r.uid LIKE ? ESCAPE '\\'"
    rows = db.query(
        "SELECT r.uid FROM runs r LEFT JOIN samples s ON s.id = r.sample_id"
        + where
        + clause
        + " ORDER BY r.uid LIMIT 50",
        [*params, escaped + "%"],
    )
    return [r[0] for r in rows]


# ---------------------------------------------------------------------- streams
@dataclass(frozen=True)
class StreamRecord:
    """One row of ``streams``, descriptors decoded."""

    uid: str
    name: str
    data_keys: dict[str, dict[str, Any]]
    time_created: float


def list_streams(db: Database, run_uid: str) -> list[StreamRecord]:
    """The streams of a run in the order they were opened."""
    rows = db.query(
        "SELECT uid, name, data_keys, time_created FROM streams WHERE run_uid = ? "
        "ORDER BY time_created, rowid",
        (run_uid,),
    )
    out = []
    for uid, name, data_keys, created in rows:
        keys = decode_json(data_keys, {}, db, "stream data_keys", run=run_uid, stream=name)
        if not isinstance(keys, dict):
            raise BadJSONError(
                f"stream data_keys must be a JSON object, found {type(keys).__name__}",
                db.path,
                run=run_uid,
                stream=name,
            )
        keys = {k: (v if isinstance(v, dict) else {}) for k, v in keys.items()}
        out.append(StreamRecord(uid, name, keys, created))
    return out


# ----------------------------------------------------------------------- events
@dataclass
class EventColumns:
    """A stream's events as columns, in ``seq_num`` order.

    Attributes
    ----------
    seq_num : ndarray of int64
    time : ndarray of float64
        Epoch seconds.
    columns : dict of str to list
        One list per field, in order of first appearance; an event that lacks
        the field holds :data:`MISSING`, a JSON ``null`` holds ``None``.
    """

    seq_num: np.ndarray
    time: np.ndarray
    columns: dict[str, list[Any]]

    def __len__(self) -> int:
        return len(self.seq_num)


_EVENTS_SQL = (
    "SELECT e.seq_num, e.time, e.data FROM events e JOIN streams s ON s.uid = e.stream_uid "
    "WHERE s.run_uid = ? AND s.name = ? ORDER BY e.seq_num"
)


def stream_events(db: Database, run_uid: str, stream: str, *, missing: Any = MISSING) -> EventColumns:
    """Read and decode every event of one stream of a run.

    The JSON of all rows is decoded in one ``orjson`` call over the joined
    text instead of one call per row.

    Parameters
    ----------
    missing : optional
        What stands for a field an event lacks (default :data:`MISSING`;
        pass ``None`` when absent and ``null`` mean the same to the caller).

    Raises
    ------
    BadJSONError
        Naming the seq_num of the first event whose data does not decode or
        is not a JSON object.
    """
    rows = db.query(_EVENTS_SQL, (run_uid, stream))
    n = len(rows)
    if n == 0:
        return EventColumns(np.empty(0, np.int64), np.empty(0, np.float64), {})
    # map/itemgetter loops run in C: for 100k events this is several times
    # faster than zip(*rows) or per-event comprehensions.
    seq = list(map(itemgetter(0), rows))
    times = list(map(itemgetter(1), rows))
    texts = list(map(itemgetter(2), rows))
    seq_arr = _numeric_column(db, seq, np.int64, "events.seq_num", seq, run=run_uid, stream=stream)
    time_arr = _numeric_column(db, times, np.float64, "events.time", seq, run=run_uid, stream=stream)
    try:
        dicts = _loads("[" + _join(texts) + "]")
        ok = len(dicts) == n and set(map(type, dicts)) == {dict}
    except (ValueError, TypeError):
        ok = False
    if not ok:
        _raise_bad_event(db, run_uid, stream, seq, texts)
    first = dicts[0]
    if set(map(len, dicts)) == {len(first)}:
        # Same size as the first event and holding all its keys means the same
        # fields (the usual case): no per-event layout tuples needed.
        try:
            columns = {k: list(map(itemgetter(k), dicts)) for k in first}
        except KeyError:
            pass
        else:
            return EventColumns(seq_arr, time_arr, columns)
    layouts = list(dict.fromkeys(map(tuple, dicts)))
    keys: dict[str, None] = {}
    for layout in layouts:
        keys.update(dict.fromkeys(layout))
    # A field every event has needs no default: a plain item lookup is cheaper than get().
    everywhere = set(layouts[0]).intersection(*layouts[1:])
    columns = {
        k: list(map(itemgetter(k), dicts))
        if k in everywhere
        else list(map(dict.get, dicts, repeat(k), repeat(missing)))
        for k in keys
    }
    return EventColumns(seq_arr, time_arr, columns)


def _join(texts: Sequence[Any]) -> str:
    try:
        return ",".join(texts)
    except TypeError:  # hand-made files can hold JSON as BLOBs (bytes)
        return ",".join(t.decode() if isinstance(t, bytes) else t for t in texts)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _numeric_column(
    db: Database, values: list[Any], dtype: Any, column: str, seqs: list[Any], **where: Any
) -> np.ndarray:
    """``values`` as an array of ``dtype``; a NULL or non-number names its event."""
    try:
        arr = np.asarray(values, dtype)
        if arr.dtype.kind == "f" and np.isnan(arr).any():
            raise ValueError("NULL")
        return arr
    except (ValueError, TypeError, OverflowError):
        for s, v in zip(seqs, values):
            if not _is_number(v) or (isinstance(v, float) and v != v):
                raise BeamtimeDataError(
                    f"{column} must be a number, found {v!r}", db.path, seq_num=s, **where
                ) from None
        raise BeamtimeDataError(f"{column} holds values that are not numbers", db.path, **where) from None


def _raise_bad_event(db: Database, run_uid: str, stream: str, seq: Sequence[Any], texts: Sequence[Any]) -> None:
    for s, text in zip(seq, texts):
        where = {"run": run_uid, "stream": stream, "seq_num": s}
        if not isinstance(text, (str, bytes)):
            raise BadJSONError(f"event data must be JSON text, found {type(text).__name__}", db.path, **where)
        value = decode_json(text, None, db, "event data", **where)
        if not isinstance(value, dict):
            raise BadJSONError(
                f"event data must be a JSON object, found {type(value).__name__}", db.path, **where
            )
    raise BadJSONError("event data does not decode", db.path, run=run_uid, stream=stream)


# ----------------------------------------------------------------------- frames
@dataclass
class FrameRefs:
    """Where the frames of one image field live, one entry per event.

    Attributes
    ----------
    seq_num : ndarray of int64
        The events, in ``seq_num`` order.
    groups : tuple of str
        Distinct ``zarr_group`` values.
    group : ndarray of int64
        Per event, a position in ``groups``, or -1 when the event has no frame.
    index : ndarray of int64
        Per event, ``index_in_stack`` (-1 when there is no frame).
    frame_shape : tuple of int or None
        ``(shape_x, shape_y)`` shared by all frames; None without frames.
    dtype : str or None
        NumPy dtype name shared by all frames; None without frames.
    """

    seq_num: np.ndarray
    groups: tuple[str, ...]
    group: np.ndarray
    index: np.ndarray
    frame_shape: tuple[int, int] | None
    dtype: str | None

    def __len__(self) -> int:
        return len(self.seq_num)


def image_fields(db: Database, run_uid: str, stream: str | None = None, *, n_events: int | None = None) -> list[str]:
    """Field names that have frames in ``image_refs`` for a run (or one stream).

    ``n_events`` (the events in question, when the caller knows it) picks the
    cheaper join order: walking a long scalar run's events to probe
    ``image_refs`` costs far more than walking a short ``image_refs`` table,
    and the other way round for a beamtime with many frames.
    """
    where = " WHERE s.run_uid = ?"
    params: list[Any] = [run_uid]
    if stream is not None:
        where += " AND s.name = ?"
        params.append(stream)
    if n_events is None:
        n_events = db.query("SELECT count(*) FROM events e JOIN streams s ON s.uid = e.stream_uid" + where, params)[0][0]
    (max_ref,) = db.query("SELECT COALESCE(max(id), 0) FROM image_refs")[0]  # >= its row count, O(log n)
    # CROSS JOIN fixes SQLite's join order to the order written.
    join = "CROSS JOIN" if max_ref <= n_events else "JOIN"
    sql = (
        f"SELECT DISTINCT ir.field_name FROM image_refs ir {join} events e ON e.uid = ir.event_uid "
        f"{join} streams s ON s.uid = e.stream_uid" + where
    )
    return sorted(r[0] for r in db.query(sql, params))


def frame_refs(db: Database, run_uid: str, field_name: str, stream: str | None = None) -> FrameRefs:
    """The frame map of one image field.

    With ``stream`` every event of that stream has an entry (``-1`` where it
    has no frame); without it, only events that have a frame, across all the
    run's streams (the beamline reader's ``images()``), in ``seq_num`` order.

    Raises
    ------
    FrameMismatchError
        If an event has two frames for the field, or the rows disagree on
        frame shape or dtype.
    """
    join = "LEFT JOIN" if stream is not None else "JOIN"
    sql = (
        "SELECT e.seq_num, ir.zarr_group, ir.index_in_stack, ir.shape_x, ir.shape_y, ir.dtype, e.rowid "
        f"FROM events e JOIN streams s ON s.uid = e.stream_uid {join} image_refs ir "
        "ON ir.event_uid = e.uid AND ir.field_name = ? WHERE s.run_uid = ?"
    )
    params: list[Any] = [field_name, run_uid]
    if stream is not None:
        sql += " AND s.name = ?"
        params.append(stream)
    rows = db.query(sql + " ORDER BY e.seq_num, ir.id", params)
    where = {"run": run_uid, "stream": stream, "field": field_name}
    n = len(rows)
    seq = _numeric_column(db, [r[0] for r in rows], np.int64, "events.seq_num", [r[0] for r in rows], **where)
    bad = next((r for r in rows if r[1] is not None and not all(map(_is_int, r[2:5]))), None)
    if bad is not None:
        raise FrameMismatchError(
            f"image_refs index_in_stack/shape_x/shape_y must be integers, found {bad[2:5]!r}",
            db.path,
            **{**where, "seq_num": bad[0]},
        )
    # One frame per event: two streams may share a seq_num in hand-made files, so compare events.
    if len({r[6] for r in rows}) != n:
        seen: set[int] = set()
        dup = next(r[0] for r in rows if r[6] in seen or seen.add(r[6]))
        raise FrameMismatchError(
            "event has more than one frame for this field", db.path, **{**where, "seq_num": dup}
        )
    group_ids: dict[str, int] = {}
    group = np.fromiter(
        (-1 if r[1] is None else group_ids.setdefault(r[1], len(group_ids)) for r in rows), np.int64, n
    )
    index = np.fromiter((-1 if r[2] is None else r[2] for r in rows), np.int64, n)
    layouts = {(r[3], r[4], r[5]) for r in rows if r[1] is not None}
    if len(layouts) > 1:
        raise FrameMismatchError(
            f"image_refs disagree on frame shape/dtype: {sorted(layouts, key=str)}", db.path, **where
        )
    if layouts:
        sx, sy, dtype = layouts.pop()
        try:
            np.dtype(dtype)
        except TypeError as exc:
            raise FrameMismatchError(f"image_refs dtype {dtype!r} is not a NumPy dtype", db.path, **where) from exc
        frame_shape: tuple[int, int] | None = (int(sx), int(sy))
    else:
        frame_shape, dtype = None, None
    return FrameRefs(seq, tuple(group_ids), group, index, frame_shape, dtype)
