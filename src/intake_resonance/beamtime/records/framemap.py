"""Frame maps: where each event's frame of an image field lives in the Zarr store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import FrameMismatchError
from ..format import Database
from ..plans import indexed_by
from ._values import _is_int
from .events import _numeric_column

__all__ = ["FrameRefs", "MAX_FRAME_SIDE", "first_frame_shape", "image_fields", "frame_refs"]

#: Largest frame side we read (real RSoXS detectors: 1024-4096 pixels).
MAX_FRAME_SIDE = 1 << 16


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


def _walk_hints(db: Database) -> tuple[str, str, str]:
    """Index hints walking a run's streams, their events, then their frames (all ``""`` without statistics)."""
    return (indexed_by(db, "streams", "run_uid"), indexed_by(db, "events", "stream_uid"),
            indexed_by(db, "image_refs", "event_uid"))


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
        count = (
            f"SELECT count(*) FROM streams s{indexed_by(db, 'streams', 'run_uid')} "
            f"CROSS JOIN events e{indexed_by(db, 'events', 'stream_uid')} ON e.stream_uid = s.uid"
        )
        n_events = db.query(count + where, params)[0][0]
    (max_ref,) = db.query("SELECT COALESCE(max(id), 0) FROM image_refs")[0]  # >= its row count, O(log n)
    # CROSS JOIN fixes SQLite's join order to the order written.
    join = "CROSS JOIN" if max_ref <= n_events else "JOIN"
    sql = (
        f"SELECT DISTINCT ir.field_name FROM image_refs ir {join} events e ON e.uid = ir.event_uid "
        f"{join} streams s ON s.uid = e.stream_uid" + where
    )
    hints = _walk_hints(db)
    if any(hints):  # the file's statistics must not choose the plan: the run's streams, their events, their frames
        sql = (
            f"SELECT DISTINCT ir.field_name FROM streams s{hints[0]} CROSS JOIN events e{hints[1]} ON e.stream_uid = s.uid "
            f"CROSS JOIN image_refs ir{hints[2]} ON ir.event_uid = e.uid" + where
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
    hints = _walk_hints(db)
    if any(hints):  # the file's statistics must not choose the plan: streams, then events, then frames
        sql = (
            "SELECT e.seq_num, ir.zarr_group, ir.index_in_stack, ir.shape_x, ir.shape_y, ir.dtype, e.rowid "
            f"FROM streams s{hints[0]} CROSS JOIN events e{hints[1]} ON e.stream_uid = s.uid "
            f"{join} image_refs ir{hints[2]} ON ir.event_uid = e.uid AND ir.field_name = ? WHERE s.run_uid = ?"
        )
    params: list[Any] = [field_name, run_uid]
    if stream is not None:
        sql += " AND s.name = ?"
        params.append(stream)
    rows = db.query(sql + " ORDER BY e.seq_num, ir.id", params)
    where: dict[str, Any] = {"run": run_uid, "stream": stream, "field": field_name}
    n = len(rows)
    seq = _numeric_column(db, [r[0] for r in rows], np.int64, "events.seq_num", [r[0] for r in rows], **where)
    bad = next((r for r in rows if r[1] is not None and not all(map(_is_int, r[2:5]))), None)
    if bad is not None:
        raise FrameMismatchError(
            f"image_refs index_in_stack/shape_x/shape_y must be integers, found {bad[2:5]!r}",
            db.path,
            **{**where, "seq_num": bad[0]},
        )
    bad = next((r for r in rows if r[1] is not None and (not isinstance(r[1], str) or "\0" in r[1])), None)
    if bad is not None:
        found = f"a {type(bad[1]).__name__} ({bad[1]!r})" if not isinstance(bad[1], str) else "a NUL character"
        raise FrameMismatchError(
            f"image_refs zarr_group must be a text path, found {found}", db.path, **{**where, "seq_num": bad[0]}
        )
    # One frame per event: two streams may share a seq_num in hand-made files, so compare events.
    if len({r[6] for r in rows}) != n:
        seen: set[int] = set()
        dup = next(r[0] for r in rows if r[6] in seen or seen.add(r[6]))  # type: ignore[func-returns-value]
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
            kind = np.dtype(dtype).kind
        except TypeError as exc:
            raise FrameMismatchError(f"image_refs dtype {dtype!r} is not a NumPy dtype", db.path, **where) from exc
        if kind not in "biufc":  # frames are numbers; 'object' or 'str' would make every read a Python loop
            raise FrameMismatchError(f"image_refs dtype {dtype!r} is not a numeric NumPy dtype", db.path, **where)
        if sx < 0 or sy < 0:
            raise FrameMismatchError(f"image_refs frame shape ({sx}, {sy}) is negative", db.path, **where)
        if sx > MAX_FRAME_SIDE or sy > MAX_FRAME_SIDE:
            # No detector is that large; reading one would be an impossible allocation.
            raise FrameMismatchError(
                f"image_refs frame shape ({sx}, {sy}) exceeds {MAX_FRAME_SIDE} pixels a side", db.path, **where
            )
        frame_shape: tuple[int, int] | None = (int(sx), int(sy))
    else:
        frame_shape, dtype = None, None
    return FrameRefs(seq, tuple(group_ids), group, index, frame_shape, dtype)


def first_frame_shape(db: Database, run_uid: str, stream: str, field_name: str) -> tuple[int, int] | None:
    """``(shape_x, shape_y)`` of one of a stream's frame references for ``field_name``; None without one."""
    row = db.query(
        "SELECT ir.shape_x, ir.shape_y FROM image_refs ir JOIN events e ON e.uid = ir.event_uid "
        "JOIN streams s ON s.uid = e.stream_uid WHERE s.run_uid = ? AND s.name = ? AND ir.field_name = ? LIMIT 1",
        (run_uid, stream, field_name),
    )
    if row and all(isinstance(v, int) for v in row[0]):
        return (row[0][0], row[0][1])
    return None
