"""Raw rows for checking a beamtime: nothing decoded, so one bad row hides no other.

The readers in this package stop at the first broken row; a check wants to
see them all, so these queries hand the rows over as they are stored.
"""

from __future__ import annotations

from typing import Any

from ..errors import BadTextError
from ..format import Database

__all__ = ["raw_streams", "raw_events", "raw_image_refs"]


def raw_streams(db: Database, run_uid: str) -> list[tuple[Any, ...]]:
    """``(uid, name, data_keys text)`` of a run's streams, in the order they were opened."""
    return db.query(
        "SELECT uid, name, data_keys FROM streams WHERE run_uid = ? ORDER BY time_created, rowid", (run_uid,)
    )


def raw_events(db: Database, stream_uid: str) -> list[tuple[Any, ...]]:
    """``(seq_num, data text)`` of a stream's events in ``seq_num`` order.

    Data that is not UTF-8 comes as its stored bytes (each row then names its own problem).
    """
    try:
        return db.query("SELECT seq_num, data FROM events WHERE stream_uid = ? ORDER BY seq_num", (stream_uid,))
    except BadTextError:
        return db.query(
            "SELECT seq_num, CASE WHEN typeof(data) = 'text' THEN CAST(data AS BLOB) ELSE data END FROM events "
            "WHERE stream_uid = ? ORDER BY seq_num",
            (stream_uid,),
        )


def raw_image_refs(db: Database, run_uid: str) -> list[tuple[Any, ...]]:
    """``(stream, seq_num, field, zarr_group, index_in_stack, shape_x, shape_y, dtype)`` of a run's frames."""
    return db.query(
        "SELECT s.name, e.seq_num, ir.field_name, ir.zarr_group, ir.index_in_stack, ir.shape_x, ir.shape_y, "
        "ir.dtype FROM image_refs ir JOIN events e ON e.uid = ir.event_uid JOIN streams s ON s.uid = e.stream_uid "
        "WHERE s.run_uid = ? ORDER BY e.seq_num, ir.id",
        (run_uid,),
    )
