"""A run's streams and fields (dtype, shape, units) without reading its events.

Listing what a run holds (``intake-resonance show``, intake's
``discover()``, served metadata) must not cost a table read: the fields come
from the stream's ``data_keys`` descriptors and the first few events, the
event counts from the ``seq_num`` index, frame shapes from one reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import BadTextError
from ..format import Database
from ..plans import indexed_by
from ._values import MISSING
from .arrays import column_array
from .events import decode_event_rows, list_streams, raise_not_utf8
from .summary import run_counts

__all__ = ["FieldInfo", "StreamFields", "run_fields", "SAMPLE_EVENTS"]

#: Events read to tell a field's dtype (the first ones, by seq_num).
SAMPLE_EVENTS = 3

# The beamline's descriptor dtypes, as the Dataset would type their values.
_DESCRIPTOR_DTYPES = {"number": "float64", "integer": "int64", "boolean": "bool", "string": "str"}


@dataclass(frozen=True)
class FieldInfo:
    """One field of a stream.

    Attributes
    ----------
    name : str
    dtype : str
        NumPy dtype name of the field's variable as far as the first events
        tell (``float64``, ``int64``, ``bool``, ``str``, ``object``); for
        frames the referenced dtype; from the descriptor when no sampled
        event holds the field.
    shape : tuple of int
        Shape of one event's value: ``()`` for scalars, ``(k,)`` for lists,
        ``(x, y)`` for frames (``()`` when unknown).
    units, source : str or None
        From the descriptor.
    external : bool
        The field's values are frames in the Zarr store.
    descriptor : dict
        The ``data_keys`` descriptor as stored (empty for undeclared fields).
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    units: str | None
    source: str | None
    external: bool
    descriptor: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamFields:
    """A stream's size and fields.

    Attributes
    ----------
    name : str
    n_events : int
    fields : list of FieldInfo
        Declared fields first (descriptor order), then fields the first
        events hold that no descriptor declares.
    """

    name: str
    n_events: int
    fields: list[FieldInfo]


def run_fields(db: Database, run_uid: str, *, sample_events: int = SAMPLE_EVENTS) -> list[StreamFields]:
    """Streams and fields of a run, reading at most ``sample_events`` events per stream.

    Parameters
    ----------
    db : Database
    run_uid : str
        Full uid.
    sample_events : int
        Events read per stream to tell dtypes and undeclared fields.

    Returns
    -------
    list of StreamFields
        In the order the streams were opened.

    Notes
    -----
    A stream's event count is :func:`~intake_resonance.beamtime.records.summary.run_counts`'s:
    its committed events, counted cheaply from the ``seq_num`` index.
    """
    streams = list_streams(db, run_uid)
    counts = run_counts(db, run_uid)  # the one definition of a stream's events (summary.py)
    return [
        StreamFields(s.name, counts.stream_events(s.name), _fields(db, run_uid, s.name, s.uid, s.data_keys, sample_events))
        for s in streams
    ]


def _fields(
    db: Database, run_uid: str, stream: str, stream_uid: str, keys: dict[str, dict[str, Any]], k: int
) -> list[FieldInfo]:
    try:
        rows = db.query(
            f"SELECT seq_num, time, data FROM events{indexed_by(db, 'events', 'stream_uid', 'seq_num')} "
            "WHERE stream_uid = ? ORDER BY seq_num LIMIT ?",
            (stream_uid, k),
        )
    except BadTextError:
        raise_not_utf8(db, run_uid, stream)
        raise
    sampled = decode_event_rows(db, rows, run_uid, stream).columns if rows else {}
    names = list(dict.fromkeys([*keys, *sampled]))
    out = []
    for name in names:
        desc = keys.get(name, {})
        external = bool(desc.get("external"))
        if external:
            dtype, shape = _frame_layout(db, stream_uid, name, desc, k)
        elif name in sampled:
            dtype, shape = _value_layout(sampled[name])
        else:
            dtype, shape = _DESCRIPTOR_DTYPES.get(str(desc.get("dtype")), "object"), ()
        units, source = desc.get("units"), desc.get("source")
        out.append(
            FieldInfo(
                name, dtype, shape,
                None if units is None else str(units), None if source is None else str(source),
                external, dict(desc),
            )
        )
    return out


def _value_layout(values: list[Any]) -> tuple[str, tuple[int, ...]]:
    present = [v for v in values if v is not MISSING]
    arr, is_2d = column_array(present or [None])
    text = arr.dtype.kind == "U" or (arr.dtype == object and all(isinstance(v, str) for v in present))
    kind = "str" if text and present else arr.dtype.name
    return kind, tuple(arr.shape[1:]) if is_2d else ()


def _frame_layout(db: Database, stream_uid: str, name: str, desc: dict[str, Any], k: int) -> tuple[str, tuple[int, ...]]:
    # One reference among the first events: image_refs is probed by its event index.
    ref = db.query(
        "SELECT ir.dtype, ir.shape_x, ir.shape_y FROM (SELECT uid FROM events WHERE stream_uid = ? ORDER BY seq_num LIMIT ?) e "
        "JOIN image_refs ir ON ir.event_uid = e.uid WHERE ir.field_name = ? LIMIT 1",
        (stream_uid, k, name),
    )
    if ref and isinstance(ref[0][1], int) and isinstance(ref[0][2], int):
        try:
            return np.dtype(str(ref[0][0])).name, (ref[0][1], ref[0][2])
        except TypeError:
            pass
    shape = desc.get("shape")
    layout = tuple(shape) if isinstance(shape, list) and all(isinstance(v, int) for v in shape) else ()
    return str(desc.get("dtype", "object")), layout
