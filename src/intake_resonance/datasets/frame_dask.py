"""Frame variables' dask arrays, with one frame read straight from its reader when that is all that is asked.

``ds.detector_image[k].values`` asks dask for one frame: dask builds the
slice, then optimizes, orders and schedules a one-task graph on a worker
thread, which costs a third of the read itself. :class:`FrameDaskArray` is
the dask array of a frame variable (the same graph, name and chunks; a
``dask.array.Array`` to every caller) that remembers its
:class:`~intake_resonance.beamtime.frames.FrameStack`. Indexing it with one
frame (an integer on the first axis, whole frames otherwise) gives a dask
array that, when turned into NumPy (``.values``, ``np.asarray``), reads
that frame from the reader directly, exactly as the graph's task would.
Everything else, ``.compute()`` included, is dask's own path; any other
operation gives a plain dask array.
"""

from __future__ import annotations

import numbers
from typing import Any

import dask.array
import numpy as np

from ..beamtime.frames import FrameStack

__all__ = ["FrameDaskArray", "frame_dask_array", "frame_stack_of"]


class FrameDaskArray(dask.array.Array):
    """A frame variable's dask array that reads a lone frame without the scheduler (see the module notes)."""

    _stack: FrameStack | None
    _frame: int | None

    def __getitem__(self, key: Any) -> Any:
        out = dask.array.Array.__getitem__(self, key)
        stack = self.__dict__.get("_stack")
        frame = _one_frame(key, self.shape) if stack is not None and self.__dict__.get("_frame") is None else None
        if frame is None or not isinstance(out, dask.array.Array) or out.shape != self.shape[1:]:
            return out
        picked = _wrap(out, stack)
        picked._frame = frame
        return picked

    def __array__(self, dtype: Any = None, copy: Any = None, **kwargs: Any) -> np.ndarray:
        stack, frame = self.__dict__.get("_stack"), self.__dict__.get("_frame")
        if stack is None or frame is None or kwargs:
            return np.asarray(dask.array.Array.__array__(self, dtype, copy, **kwargs))
        values = np.asarray(stack[frame])
        if values.dtype != self.dtype or values.shape != self.shape:
            values = values.astype(self.dtype).reshape(self.shape)
        return values if dtype is None else values.astype(dtype, copy=False)

    def __reduce__(self) -> Any:
        # Pickled (to a worker, a file) as the plain dask array it is.
        return (dask.array.Array, (self.dask, self.name, self.chunks, self.dtype, self._meta))


def _one_frame(key: Any, shape: tuple[int, ...]) -> int | None:
    """The frame position a key picks alone (whole frames otherwise), or None."""
    if not isinstance(key, tuple):
        key = (key,)
    if not key or len(key) > 3 or len(shape) != 3:
        return None
    first, rest = key[0], key[1:]
    if isinstance(first, (bool, np.bool_)) or not isinstance(first, numbers.Integral):
        return None
    if any(not (isinstance(k, slice) and k == slice(None)) for k in rest):
        return None
    k = int(first)
    n = shape[0]
    if not -n <= k < n:
        return None  # dask raises its own IndexError already
    return k + n if k < 0 else k


def _wrap(arr: dask.array.Array, stack: FrameStack | None) -> FrameDaskArray:
    out: FrameDaskArray = dask.array.Array.__new__(FrameDaskArray, arr.dask, arr.name, arr.chunks, meta=arr._meta)
    out._stack = stack
    out._frame = None
    return out


def frame_dask_array(arr: dask.array.Array, stack: FrameStack) -> FrameDaskArray:
    """``arr`` (a frame variable's dask array over ``stack``) as a :class:`FrameDaskArray`: same graph, name and chunks."""
    return _wrap(arr, stack)


def frame_stack_of(data: Any) -> FrameStack | None:
    """The :class:`FrameStack` behind a frame variable's lazy array (xarray's wrappers, not yet indexed); None otherwise."""
    from xarray.core import indexing

    from .build import FrameArray

    seen = 0
    while data is not None and seen < 8:
        if isinstance(data, FrameArray):
            return data.stack
        if isinstance(data, indexing.LazilyIndexedArray) and any(k != slice(None) for k in data.key.tuple):
            return None  # indexed already: the positions would not be the stack's
        data = getattr(data, "array", None)
        seen += 1
    return None
