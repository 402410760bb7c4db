"""Streams and their events: descriptors, and events decoded into columns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np

from ..errors import BadJSONError, BadTextError, BeamtimeDataError
from ..format import Database
from ..plans import indexed_by
from ._values import MAX_JSON_DEPTH, MISSING, _is_number, _loads, _too_deep, decode_json

__all__ = [
    "StreamRecord", "EventColumns", "list_streams", "stream_events", "decode_event_rows", "check_event_data", "raise_not_utf8",
]


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
        f"SELECT uid, name, data_keys, time_created FROM streams{indexed_by(db, 'streams', 'run_uid')} WHERE run_uid = ? "
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


def _events_sql(db: Database) -> str:
    """:data:`_EVENTS_SQL`, its plan fixed when the file holds statistics (:mod:`..plans`)."""
    s_hint, e_hint = indexed_by(db, "streams", "run_uid", "name"), indexed_by(db, "events", "stream_uid", "seq_num")
    if not (s_hint or e_hint):
        return _EVENTS_SQL
    return (
        f"SELECT e.seq_num, e.time, e.data FROM streams s{s_hint} CROSS JOIN events e{e_hint} ON e.stream_uid = s.uid "
        "WHERE s.run_uid = ? AND s.name = ? ORDER BY e.seq_num"
    )


def stream_events(db: Database, run_uid: str, stream: str, *, missing: Any = MISSING) -> EventColumns:
    """Read and decode every event of one stream of a run.

    The JSON of all rows is decoded in one ``orjson`` call over the joined
    text instead of one call per row. This is the plain-values reader (every
    value a Python object); :func:`~intake_resonance.beamtime.records.event_table`
    reads the same events column-wise in bounded memory.

    Parameters
    ----------
    missing : optional
        What stands for a field an event lacks (default :data:`MISSING`;
        pass ``None`` when absent and ``null`` mean the same to the caller).

    Raises
    ------
    BadJSONError
        Naming the seq_num of the first event whose data does not decode, is
        not a JSON object, or nests deeper than :data:`MAX_JSON_DEPTH`.
    BeamtimeDataError
        Naming the seq_num of the first event whose ``seq_num`` or ``time``
        is not a number.
    """
    try:
        rows = db.query(_events_sql(db), (run_uid, stream))
    except BadTextError:
        raise_not_utf8(db, run_uid, stream)
        raise
    return decode_event_rows(db, rows, run_uid, stream, missing=missing)


def raise_not_utf8(db: Database, run_uid: str, stream: str) -> None:
    """Raise the :class:`BadJSONError` naming the first event of a stream whose data is not UTF-8 text.

    SQLite hands out stored bytes as they are; Python refuses to make text of
    them for the whole query. The stream's data is read again as bytes to
    find the event. Returns when every event's data is UTF-8 (another column
    was not).
    """
    rows = db.query(_events_sql(db).replace("e.data", "CAST(e.data AS BLOB)", 1), (run_uid, stream))
    for seq_num, _, data in rows:
        if isinstance(data, bytes):
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadJSONError(
                    f"event data is not UTF-8 text (byte 0x{data[exc.start]:02x} at position {exc.start})",
                    db.path, run=run_uid, stream=stream, seq_num=seq_num,
                ) from None


def decode_event_rows(
    db: Database, rows: Sequence[tuple[Any, Any, Any]], run_uid: str, stream: str, *, missing: Any = MISSING
) -> EventColumns:
    """Decode ``(seq_num, time, data)`` rows, already in ``seq_num`` order, into columns.

    The semantics of :func:`stream_events` for any set of rows (a whole
    stream, or one ``seq_num`` range of it).
    """
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
    columns = _columns(dicts, missing)
    for name, values in columns.items():
        if not _CONTAINERS.isdisjoint(map(type, values)):
            for s, v in zip(seq, values):
                if _too_deep(v, 1):
                    raise BadJSONError(
                        f"event data is nested deeper than {MAX_JSON_DEPTH} levels", db.path,
                        run=run_uid, stream=stream, seq_num=s, field=name,
                    )
    return EventColumns(seq_arr, time_arr, columns)


_CONTAINERS = frozenset((list, dict))


def _columns(dicts: list[dict[str, Any]], missing: Any) -> dict[str, list[Any]]:
    first = dicts[0]
    if set(map(len, dicts)) == {len(first)}:
        # Same size as the first event and holding all its keys means the same
        # fields (the usual case): no per-event layout tuples needed.
        try:
            return {k: list(map(itemgetter(k), dicts)) for k in first}
        except KeyError:
            pass
    layouts = list(dict.fromkeys(map(tuple, dicts)))
    keys: dict[str, None] = {}
    for layout in layouts:
        keys.update(dict.fromkeys(layout))
    # A field every event has needs no default: a plain item lookup is cheaper than get().
    everywhere = set(layouts[0]).intersection(*layouts[1:])
    return {
        k: list(map(itemgetter(k), dicts))
        if k in everywhere
        else list(map(dict.get, dicts, repeat(k), repeat(missing)))
        for k in keys
    }


def _join(texts: Sequence[Any]) -> str:
    try:
        return ",".join(texts)
    except TypeError:  # hand-made files can hold JSON as BLOBs (bytes)
        return ",".join(t.decode() if isinstance(t, bytes) else t for t in texts)


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


def check_event_data(db: Database, text: Any, **where: Any) -> None:
    """Raise :class:`BadJSONError` unless one event's stored data is a JSON object.

    ``where`` (run, stream, seq_num) goes into the message.
    """
    if not isinstance(text, (str, bytes)):
        raise BadJSONError(f"event data must be JSON text, found {type(text).__name__}", db.path, **where)
    value = decode_json(text, None, db, "event data", **where)  # refuses nesting beyond MAX_JSON_DEPTH
    if not isinstance(value, dict):
        raise BadJSONError(f"event data must be a JSON object, found {type(value).__name__}", db.path, **where)


def _raise_bad_event(db: Database, run_uid: str, stream: str, seq: Sequence[Any], texts: Sequence[Any]) -> None:
    for s, text in zip(seq, texts):
        check_event_data(db, text, run=run_uid, stream=stream, seq_num=s)
    raise BadJSONError("event data does not decode", db.path, run=run_uid, stream=stream)
