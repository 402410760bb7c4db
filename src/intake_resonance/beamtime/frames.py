"""FrameStack: a lazy, picklable ``(n, x, y)`` view over a field's Zarr frames.

A stack holds only plain data (the store path and index arrays), so it can be
pickled into a dask graph and opened again on a worker. Nothing is read until
it is indexed; then each run of frames that sit next to each other in one Zarr
array is read with a single Zarr call (Zarr decodes that call's chunks
concurrently), and scattered frames with one ``oindex`` call per array.
Arrays in the beamline's own layout are decoded by
:class:`~intake_resonance.beamtime.zstd_frames.ZstdFrames` instead, straight into the
output.

Every byte is read through :class:`~intake_resonance.beamtime.store.BeamtimeStore`,
so nothing outside the store is read. A frame that cannot be read is an
error naming the file, run, stream, seq_num and field, never a number: the
failing frame is found by reading the failed block again frame by frame.

A stack remembers which ``.db`` file its references came from (device and
inode, taken when the database was opened). Before and after every read it
looks again (one ``stat``): a file deleted, or replaced by another under the
same name (what rsync does), is a :class:`~.errors.BeamtimeReplacedError`,
never frames of another run read at the old positions. On another host the
device number is not compared (each host numbers its mounts itself).
"""

from __future__ import annotations

import hashlib
import socket
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .bounds import bound_for
from .errors import (
    BeamtimeError,
    BeamtimeReplacedError,
    FrameDecodeError,
    FrameIndexError,
    FrameMismatchError,
    FramesMissingError,
)
from .format import file_identity, open_zarr_array
from .records import FrameRefs
from .shards import missing_frame
from .store import BeamtimeStore, absent_chunks_policy
from .zstd_frames import ZstdFrames

__all__ = ["FrameStack", "array_layout_problems"]

def array_layout_problems(
    arr: Any, group: str, frame_shape: tuple[int, int], dtype: np.dtype | None
) -> list[str]:
    """What in a Zarr array disagrees with its ``image_refs`` rows (empty when nothing).

    Parameters
    ----------
    arr : zarr.Array
        The opened array (only its metadata is read).
    group : str
        Its path in the store, for the messages.
    frame_shape : tuple of int
        ``(shape_x, shape_y)`` from ``image_refs``.
    dtype : numpy.dtype or None
        The dtype named in ``image_refs``; None skips the dtype comparison
        (the caller reports a name that is not a dtype).
    """
    problems = []
    if arr.ndim != 3 or tuple(arr.shape[1:]) != tuple(frame_shape):
        problems.append(f"array {group!r} has shape {tuple(arr.shape)}, but image_refs say frames are {tuple(frame_shape)}")
    # image_refs holds a dtype *name* ('int32' for '<i4' and '>i4' alike):
    # byte order is not part of it, and reads convert into native order.
    if dtype is not None and np.dtype(arr.dtype).newbyteorder("=") != np.dtype(dtype).newbyteorder("="):
        problems.append(f"array {group!r} holds {arr.dtype}, but image_refs say {np.dtype(dtype)}")
    return problems


def _split_key(key: Any) -> tuple[Any, tuple[Any, ...]]:
    """Split a key into its first-axis part and the rest, expanding ``...``
    the way NumPy does for a 3-d array."""
    key = key if isinstance(key, tuple) else (key,)
    n_ellipsis = sum(k is Ellipsis for k in key)
    if n_ellipsis > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if n_ellipsis:
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        fill = 3 - (len(key) - 1)
        if fill < 0:
            raise IndexError(f"too many indices for a 3-d FrameStack: {len(key) - 1}")
        key = key[:i] + (slice(None),) * fill + key[i + 1 :]
    if len(key) > 3:
        raise IndexError(f"too many indices for a 3-d FrameStack: {len(key)}")
    if not key:
        return slice(None), ()
    return key[0], key[1:]


class FrameStack:
    """Lazy NumPy-like view of one image field's frames.

    Parameters
    ----------
    store : str or Path
        The beamtime's ``.zarr`` directory.
    refs : FrameRefs
        Per event, the array and index of its frame (or none).
    db_path : str or Path, optional
        The beamtime's ``.db``, named in error messages.
    run, stream, field : str, optional
        Named in error messages.
    identity : tuple of int, optional
        ``(st_dev, st_ino)`` of the ``.db`` the references were read from
        (:attr:`.format.Database.identity`); default: the file at
        ``db_path`` now. Reads refuse once the file at ``db_path`` is another,
        or the ``store`` directory is another than it was when the stack was
        made (both checked only when an identity is known).

    Notes
    -----
    ``shape`` is ``(n_events, shape_x, shape_y)``. When some event has no
    frame its slot is filled with NaN, so ``dtype`` is then the frame dtype
    promoted to a floating type; otherwise it is the stored dtype.
    Keys follow NumPy: an integer (NumPy integers and 0-d arrays too), a
    slice or an integer array (any shape, unsorted, repeated) on the first
    axis, and a tuple of keys for all three axes with at most one ``...``
    (what dask passes). Booleans, floats and strings raise ``TypeError``;
    positions beyond the stack raise ``IndexError``.
    """

    def __init__(
        self,
        store: str | Path,
        refs: FrameRefs,
        db_path: str | Path | None = None,
        *,
        run: str | None = None,
        stream: str | None = None,
        field: str | None = None,
        identity: tuple[int, int] | None = None,
    ) -> None:
        self.store = Path(store)
        self.refs = refs
        self.db_path = None if db_path is None else Path(db_path)
        if identity is None and self.db_path is not None:
            identity = file_identity(self.db_path)
        self.identity = identity
        # The store is checked the same way: a .zarr swapped under an unchanged .db
        # holds other arrays at the same paths.
        self.store_identity = file_identity(self.store) if identity is not None else None
        self._host = socket.gethostname()
        self.run, self.stream, self.field = run, stream, field
        self.frame_shape: tuple[int, int] = refs.frame_shape or (0, 0)
        self.stored_dtype = np.dtype(refs.dtype or "float64")
        self.masked = bool(np.any(refs.group < 0))
        self.dtype = np.promote_types(self.stored_dtype, np.float32) if self.masked else self.stored_dtype
        self.shape: tuple[int, int, int] = (len(refs), *self.frame_shape)
        self._arrays: dict[int, Any] = {}
        self._direct: dict[int, ZstdFrames | None] = {}
        self._zstore: BeamtimeStore | None = None
        self._lock = threading.Lock()

    # -- array protocol ---------------------------------------------------
    @property
    def ndim(self) -> int:
        """int: always 3."""
        return 3

    @property
    def size(self) -> int:
        """int: number of elements."""
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        """int: bytes the whole stack takes once read."""
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"<FrameStack {self.field!r} shape={self.shape} dtype={self.dtype} store={str(self.store)!r}>"

    def close(self) -> None:
        """Forget the Zarr arrays opened so far (the next read opens them again)."""
        with self._lock:
            self._arrays.clear()
            self._direct.clear()

    # -- pickling / dask tokens --------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_arrays"] = {}
        state["_direct"] = {}
        state["_zstore"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        h = hashlib.sha1()
        for arr in (self.refs.seq_num, self.refs.group, self.refs.index):
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update("\0".join(self.refs.groups).encode())
        return ("FrameStack", str(self.store.resolve()), h.hexdigest(), self.shape, str(self.dtype))

    # -- reading ------------------------------------------------------------
    def __getitem__(self, key: Any) -> np.ndarray:
        first, rest = _split_key(key)
        positions, out_shape = self._positions(first)
        self._check_same_file()
        frames = self._read(positions.ravel())
        self._check_same_file()  # replaced while reading: what was read may be the new file's
        if out_shape is None:  # an integer picks one frame
            frames = frames[0]
        elif len(out_shape) != 1:  # an n-d integer array keeps its shape, as in NumPy
            frames = frames.reshape(*out_shape, *self.frame_shape)
        if rest:
            lead = () if out_shape is None else (slice(None),) * len(out_shape)
            frames = frames[(*lead, *rest)]
        return frames

    def _positions(self, key: Any) -> tuple[np.ndarray, tuple[int, ...] | None]:
        """Frame positions for a first-axis key, and the key's output shape
        (None for a single integer, which drops the axis)."""
        n = self.shape[0]
        if isinstance(key, (bool, np.bool_)):
            raise TypeError("FrameStack indices must be integers, slices or integer arrays, not bool")
        if isinstance(key, slice):
            pos = np.arange(n, dtype=np.int64)[key]
            return pos, pos.shape
        if key is None or isinstance(key, (str, bytes, float)):
            raise TypeError(
                f"FrameStack indices must be integers, slices or integer arrays, not {type(key).__name__}"
            )
        arr = np.asarray(key)
        if arr.size == 0 and arr.dtype.kind == "f" and not isinstance(key, np.ndarray):
            arr = arr.astype(np.int64)  # a plain empty list selects nothing, as in NumPy
        if arr.dtype.kind not in "iu":
            raise TypeError(f"FrameStack indices must be integers, slices or integer arrays, not {arr.dtype}")
        arr = arr.astype(np.int64)
        if arr.size and (arr.min() < -n or arr.max() >= n):
            bad = int(arr[(arr < -n) | (arr >= n)].flat[0])
            raise IndexError(f"frame index {bad} out of range for {n} frames")
        pos = arr % n if n else arr
        # A Python/NumPy integer or a 0-d integer array picks one frame.
        return (pos.reshape(1), None) if arr.ndim == 0 else (pos, arr.shape)

    def _check_same_file(self) -> None:
        """Refuse to read once the ``.db`` the references came from is gone or another file."""
        if self.identity is None or self.db_path is None:
            return
        now = file_identity(self.db_path)
        if now is None:
            raise BeamtimeReplacedError(
                "beamtime database was deleted (or moved away) after this Dataset was opened; its frames are not read",
                self.db_path, run=self.run, stream=self.stream, field=self.field,
            )
        if not self._same(now, self.identity):
            raise BeamtimeReplacedError(
                "beamtime database was replaced by another file after this Dataset was opened; "
                "its frame references belong to the old file: open the run again",
                self.db_path, run=self.run, stream=self.stream, field=self.field,
            )
        if self.store_identity is not None and not self._same(file_identity(self.store), self.store_identity):
            raise BeamtimeReplacedError(
                "frame store was replaced (or removed) after this Dataset was opened; "
                "the frame references belong to the old store: open the run again",
                self.store, run=self.run, stream=self.stream, field=self.field,
            )

    def _same(self, now: tuple[int, int] | None, then: tuple[int, int]) -> bool:
        """Whether ``now`` is the file ``then`` named: the inode, and the device on the host that saw it."""
        if now is None:
            return False
        # Another host (a dask worker over NFS) numbers the mounts itself: compare inodes only.
        return now[1] == then[1] and (socket.gethostname() != self._host or now[0] == then[0])

    def _where(self, seq_num: int) -> dict[str, Any]:
        return {"run": self.run, "stream": self.stream, "field": self.field, "seq_num": seq_num}

    def _array(self, g: int, seq_num: int) -> Any:
        arr = self._arrays.get(g)
        if arr is None:
            where = self._where(seq_num)
            group = self.refs.groups[g]
            if self._zstore is None:
                self._zstore = BeamtimeStore(self.store)
            arr = open_zarr_array(self._zstore, group, **where)
            problems = array_layout_problems(arr, group, self.frame_shape, self.stored_dtype)
            if problems:
                raise FrameMismatchError(problems[0], self.store, **where)
            bound = bound_for(arr)
            if bound is not None:  # no chunk of it is decoded beyond what a chunk can hold (bounds.py)
                self._zstore.bound(group, bound)
            direct = ZstdFrames.for_array(arr, self._zstore, group)
            with self._lock:
                self._arrays[g] = arr
                self._direct[g] = direct
        return arr

    def _read(self, positions: np.ndarray) -> np.ndarray:
        out_shape = (len(positions), *self.frame_shape)
        if self.masked:
            out = np.full(out_shape, np.nan, dtype=self.dtype)
        else:
            out = np.empty(out_shape, dtype=self.dtype)
        groups = self.refs.group[positions]
        indices = self.refs.index[positions]
        for g in np.unique(groups[groups >= 0]):
            rows = np.flatnonzero(groups == g)
            idx = indices[rows]
            seq = self.refs.seq_num[positions[rows]]
            arr = self._array(int(g), int(seq[0]))
            bad = (idx < 0) | (idx >= arr.shape[0])
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                raise FrameIndexError(
                    f"index_in_stack {int(idx[k])} is beyond array {self.refs.groups[g]!r} of {arr.shape[0]} frames",
                    self.store,
                    **self._where(int(seq[k])),
                )
            try:
                self._read_frames(int(g), arr, idx, rows, out)
            except MemoryError:
                raise FrameDecodeError(
                    f"ran out of memory decoding frames of array {self.refs.groups[g]!r} ({len(idx)} frames of "
                    f"{self.frame_shape} {self.dtype})",
                    self.store,
                    **self._where(int(seq[0])),
                ) from None
            except Exception as exc:
                raise self._failed_frame(int(g), arr, idx, seq, exc) from exc
        return out

    def _read_frames(self, g: int, arr: Any, idx: np.ndarray, rows: np.ndarray, out: np.ndarray) -> None:
        direct = self._direct.get(g)
        if direct is not None:
            direct.read(idx, rows, out)
            return
        if arr.shards is not None and absent_chunks_policy() == "raise" and self._zstore is not None:
            # Zarr reads an inner chunk its shard lacks as the fill value: refuse, as for an absent chunk file.
            lost = missing_frame(arr, self._zstore, self.refs.groups[g], idx)
            if lost is not None:
                raise FramesMissingError(
                    f"frame {lost} of sharded array {self.refs.groups[g]!r} is absent from its shard (never written; "
                    "Zarr would read it as the fill value)",
                    self.store,
                )
        self._read_group(arr, idx, rows, out)

    def _failed_frame(self, g: int, arr: Any, idx: np.ndarray, seq: np.ndarray, exc: Exception) -> BeamtimeError:
        """The error naming the first frame of a failed read that fails alone (read again one by one)."""
        group = self.refs.groups[g]
        one = np.empty((1, *self.frame_shape), self.dtype)
        for index, seq_num in zip(idx.tolist(), seq.tolist()):
            try:
                self._read_frames(g, arr, np.array([index]), np.array([0]), one)
            except MemoryError:
                raise
            except Exception as frame_exc:  # noqa: BLE001 - turned into our error below
                return self._frame_error(group, index, seq_num, frame_exc)
        return self._frame_error(group, int(idx[0]), int(seq[0]), exc)  # fails only together

    def _frame_error(self, group: str, index: int, seq_num: int, exc: Exception) -> BeamtimeError:
        where = self._where(seq_num)
        ours = _our_error(exc)
        if ours is not None:  # the store's own refusal, now with the frame's place
            message = ours.message if ours.message.startswith("frame ") else f"frame {index} of array {group!r}: {ours.message}"
            return type(ours)(message, ours.path or self.store, **where)
        return FrameDecodeError(
            f"frame {index} of array {group!r} does not decode: {type(exc).__name__}: {exc}", self.store, **where
        )

    @staticmethod
    def _read_group(arr: Any, idx: np.ndarray, rows: np.ndarray, out: np.ndarray) -> None:
        # Split into maximal runs where both the source index and the output row
        # step by +1: each run is one contiguous slice read.
        breaks = np.flatnonzero((np.diff(idx) != 1) | (np.diff(rows) != 1)) + 1
        starts = np.concatenate(([0], breaks))
        stops = np.concatenate((breaks, [len(idx)]))
        if len(starts) <= 2 or len(starts) * 4 < len(idx):
            for a, b in zip(starts, stops):
                out[rows[a] : rows[b - 1] + 1] = arr[int(idx[a]) : int(idx[b - 1]) + 1]
        else:
            # Many short runs: one oindex call lets Zarr fetch them concurrently.
            uniq, inverse = np.unique(idx, return_inverse=True)
            out[rows] = np.asarray(arr.oindex[uniq])[inverse]


def _our_error(exc: BaseException) -> BeamtimeError | None:
    """Our error behind ``exc``: itself, or one Zarr's task groups wrapped (an ``ExceptionGroup``)."""
    if isinstance(exc, BeamtimeError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _our_error(inner)
            if found is not None:
                return found
    return None
