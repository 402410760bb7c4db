"""The typing rules of scalar fields: one field's values to one NumPy array.

Applied to the values present (a missing field and a JSON ``null`` are
treated alike):

- all integers -> int64; with gaps -> float64 with NaN;
- any float (or ints and floats) -> float64, gaps NaN;
- all booleans -> bool; with gaps -> float64 (1.0 / 0.0 / NaN);
- strings -> object holding ``str`` (variable width: a 1 MB string among
  300 events is 1 MB, not 300 times the longest); with gaps, None for them;
- equal-length lists -> a 2-D array ``(events, length)``;
- anything else (mixed kinds, ragged lists) -> object, values as stored.

A column of an :class:`~intake_resonance.beamtime.records.EventTable` that is
already an array passes through as it is: the table types a column only
where these rules give the same array.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._values import MISSING

__all__ = ["column_array", "with_missing"]


def column_array(values: np.ndarray | list[Any]) -> tuple[np.ndarray, bool]:
    """One field's values as an array by the typing rules above.

    Parameters
    ----------
    values : ndarray or list
        A column of :class:`~intake_resonance.beamtime.records.EventTable` or of
        :class:`~intake_resonance.beamtime.records.EventColumns`; ``None`` and
        :data:`MISSING` are gaps.

    Returns
    -------
    array : ndarray
        1-D, or 2-D for equal-length lists.
    is_2d : bool
    """
    if isinstance(values, np.ndarray):
        return values, values.ndim == 2
    # One C-level pass over the types: all-float columns (most beamline
    # readings) need no inference, and gaps show as NoneType.
    types = set(map(type, values))
    if types == {float}:
        return np.array(values, dtype=np.float64), False
    if type(MISSING) in types:
        values = [None if v is MISSING else v for v in values]
        types = (types - {type(MISSING)}) | {type(None)}
    from pandas.api.types import infer_dtype  # pandas is imported only for mixed columns

    kind = infer_dtype(values, skipna=True)
    # infer_dtype skips NaN as it skips None: a float in an "integer",
    # "boolean" or "string" column is a NaN reading, a gap to these rules.
    has_gaps = kind == "empty" or type(None) in types or (float in types and kind in ("integer", "boolean", "string"))
    if kind == "integer" and not has_gaps:
        try:
            return np.array(values, dtype=np.int64), False
        except OverflowError:
            return np.array(values, dtype=np.float64), False
    if kind in ("integer", "floating", "mixed-integer-float", "decimal", "empty"):
        return np.array(values, dtype=np.float64), False
    if kind == "boolean":
        if not has_gaps:
            return np.array(values, dtype=bool), False
        return np.array([np.nan if v is None else float(v) for v in values]), False
    if kind == "string":  # variable width (object), never as wide as the widest times the rows; gaps None
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out, False
    lists = [v for v in values if v is not None]
    if lists and all(isinstance(v, list) for v in lists) and len({len(v) for v in lists}) == 1:
        width = len(lists[0])
        filled = [[None] * width if v is None else v for v in values]
        inner = column_array([x for row in filled for x in row])[0]
        if inner.dtype != object:
            return inner.reshape(len(values), width), True
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out, False


def with_missing(dtype: np.dtype) -> tuple[np.dtype, Any]:
    """The dtype a column needs to hold a missing value, and that value (xarray's rules).

    Floats and complex keep their dtype (NaN); integers and booleans become
    float (``float32`` up to 2 bytes, else ``float64``; NaN); datetimes and
    timedeltas keep theirs (NaT); anything else becomes ``object`` with NaN,
    as xarray's own padding gives.
    """
    dtype = np.dtype(dtype)
    if dtype.kind in "fc":
        return dtype, np.nan
    if dtype.kind in "iub":
        return np.dtype(np.float32 if dtype.itemsize <= 2 else np.float64), np.nan
    if dtype.kind in "mM":
        return dtype, dtype.type("NaT", np.datetime_data(dtype)[0])  # in the dtype's unit: NumPy deprecates the generic one
    return np.dtype(object), np.nan
