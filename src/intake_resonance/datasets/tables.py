"""A stream's events as the beamline reader's DataFrame (what the facade's ``run.table()`` returns)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..beamtime import records
from ..beamtime.format import Database

__all__ = ["beamline_table"]

_LEADING = ("seq_num", "time")


def beamline_table(db: Database, uid: str, stream: str = "primary") -> pd.DataFrame:
    """One stream of run ``uid`` as the beamline's reader builds it from per-event records.

    The columns, dtypes, gaps and errors are those documented on the facade's
    :meth:`intake_resonance.faces.facade.Run.table`, which returns this; the
    work is columnar (:func:`~intake_resonance.beamtime.records.event_table`),
    only the dtype inference is the beamline's.
    """
    # Typed columns come straight from the columnar reader; list columns
    # (gaps, strings, mixed kinds) are inferred as pandas does for records.
    ev = records.event_table(db, uid, stream)
    if len(ev) == 0:
        return pd.DataFrame(columns=pd.Index(list(_LEADING)))
    # int64 and float64, as pandas infers for the records' Python ints and floats.
    data: dict[str, Any] = {"seq_num": ev.seq_num, "time": ev.time}
    for name, values in ev.columns.items():
        if name in _LEADING:
            # A field named like a leading column replaces it where present
            # (the beamline updates each record with the event's data).
            lead = data[name].tolist()
            if isinstance(values, np.ndarray) and values.dtype.kind == "f" and np.isnan(values).any():
                values = records.stream_events(db, uid, stream).columns[name]  # NaN: absent or a value?
            plain = values.tolist() if isinstance(values, np.ndarray) else values
            data[name] = [old if v is records.MISSING else v for old, v in zip(lead, plain)]
            continue
        if isinstance(values, np.ndarray):
            data[name] = values  # float64 (NaN for gaps), int64 or bool: what pandas would infer
            continue
        types = set(map(type, values))
        if type(records.MISSING) in types:
            # Per-record frames mark an absent key with NaN before inferring dtypes.
            values = [np.nan if v is records.MISSING else v for v in values]
            types = (types - {type(records.MISSING)}) | {float}
        data[name] = _column(values, types)
    # Lists left as lists are inferred as pandas does for a list of
    # records (same object-array conversion), without the records.
    return pd.DataFrame(data, copy=False)


def _column(values: list[Any], types: set[type]) -> Any:
    """``values`` as the array pandas would infer, built directly when that is certain.

    Only all-float and all-int columns are converted here (numpy does it in
    C, several times faster than pandas' object inference); anything else
    stays a list for pandas to infer.
    """
    if types == {float}:
        return np.array(values, dtype=np.float64)
    if types == {int}:
        try:
            return np.array(values, dtype=np.int64)
        except OverflowError:  # pandas makes uint64 or object of these: let it
            return values
    return values
