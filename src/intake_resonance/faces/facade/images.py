"""The beamline reader's ``LazyImageSequence``: a run's frames of one field, read when indexed."""

from __future__ import annotations

import numpy as np

from ...beamtime.frames import FrameStack

__all__ = ["LazyImageSequence"]


class LazyImageSequence:
    """A run's frames of one field, read only when indexed.

    Parameters
    ----------
    frames : FrameStack
        The frames, one per referencing event.

    Notes
    -----
    ``seq[i]`` (an ``int`` or NumPy integer, negative from the end) returns
    one ``(shape_x, shape_y)`` frame; ``seq[a:b:c]`` a stacked
    ``(n, shape_x, shape_y)`` array, or ``np.empty((0,), np.int32)`` when the
    slice selects nothing (as the beamline reader returns). Any other index,
    ``bool`` included, raises ``TypeError``.
    """

    def __init__(self, frames: FrameStack) -> None:
        self._frames = frames

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def shape(self) -> tuple[int, int, int]:
        """tuple of int: ``(n_frames, shape_x, shape_y)``; ``(0, 0, 0)`` when empty."""
        if len(self._frames) == 0:
            return (0, 0, 0)
        return self._frames.shape

    def __getitem__(self, idx: int | slice) -> np.ndarray:
        """Read one frame or a stack of frames.

        Parameters
        ----------
        idx : int or slice

        Returns
        -------
        numpy.ndarray

        Raises
        ------
        IndexError
            If an integer index is out of range.
        TypeError
            If ``idx`` is neither an integer nor a slice.
        FramesMissingError
            If the Zarr store or an array in it is absent.
        """
        # bool is an int subclass; frame True/False is almost surely a mistake.
        if isinstance(idx, (bool, np.bool_)):
            raise TypeError("LazyImageSequence index must be an integer or a slice, not bool")
        n = len(self._frames)
        if isinstance(idx, (int, np.integer)):
            i = int(idx)
            if not -n <= i < n:
                raise IndexError(f"frame {i} is out of range: the sequence holds {n} frames")
            return self._frames[i]
        if isinstance(idx, slice):
            if len(range(*idx.indices(n))) == 0:
                return np.empty((0,), dtype=np.int32)
            return self._frames[idx]
        raise TypeError(f"LazyImageSequence index must be an integer or a slice, not {type(idx).__name__}")

    def __repr__(self) -> str:
        return f"<LazyImageSequence field={self._frames.field!r} shape={self.shape}>"
