"""FrameStack: a lazy, picklable ``(n, x, y)`` view over a field's Zarr frames.

A stack holds only plain data (the store path and index arrays), so it can be
pickled into a dask graph and opened again on a worker. Nothing is read until
it is indexed; then each run of frames that sit next to each other in one Zarr
array is read with a single Zarr call (Zarr decodes that call's chunks
concurrently), and scattered frames with one ``oindex`` call per array.

Arrays in the layout the beamline writes (Zarr 3, one frame per chunk, the
default ``bytes`` + ``zstd`` codecs) take a shorter way: each frame's chunk
file is decoded straight into the output array, the frames split over a
thread pool with one thread per core. That saves Zarr's per-chunk buffer and
the copy out of it, which cost about a third of a bulk read; anything that
does not decode as expected is read through Zarr instead.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FrameIndexError, FrameMismatchError
from .format import open_zarr_array
from .records import FrameRefs

__all__ = ["FrameStack", "array_layout_problems"]

_pool_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None


def _frame_pool() -> ThreadPoolExecutor:
    """One thread per core for decoding frames, shared by all stacks.

    Made again in a forked child, whose copy of the parent's pool has no threads.
    """
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            workers = max(1, os.cpu_count() or 1)
            _pool = (os.getpid(), ThreadPoolExecutor(workers, thread_name_prefix="resonance-frames"))
        return _pool[1]


def _zstd_content_size(raw: bytes) -> int | None:
    """The decoded size a zstd frame header declares, or None when it declares none.

    Decoding in place must know the size first: a frame that decodes to
    fewer bytes than a frame of the array would leave the rest of the
    output unwritten. Layout from RFC 8878, section 3.1.1.1.
    """
    if len(raw) < 6 or raw[:4] != b"\x28\xb5\x2f\xfd":
        return None
    descriptor = raw[4]
    single_segment = (descriptor >> 5) & 1
    field_size = (single_segment, 2, 4, 8)[descriptor >> 6]
    start = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[descriptor & 3]
    if field_size == 0 or len(raw) < start + field_size:
        return None
    size = int.from_bytes(raw[start : start + field_size], "little")
    return size + 256 if field_size == 2 else size


class _ZstdFrames:
    """Whole-frame reads of one Zarr 3 array in the beamline's own layout.

    Only made (see :meth:`for_array`) when each chunk is one frame encoded
    by ``bytes`` (native byte order) then ``zstd``, the zarr-python 3
    defaults the beamline writer uses; then a chunk file's decoded bytes are
    exactly the frame. A missing chunk file is a frame of the fill value, as
    Zarr reads it.
    """

    def __init__(self, folder: Path, arr: Any, codec: Any) -> None:
        self.folder = folder
        self.arr = arr
        self.codec = codec
        self.dtype = np.dtype(arr.dtype).newbyteorder("=")
        self.fill_value = arr.metadata.fill_value

    @classmethod
    def for_array(cls, arr: Any, folder: Path) -> _ZstdFrames | None:
        """The reader for ``arr`` (stored in ``folder``), or None when its layout is another."""
        try:
            from numcodecs.zstd import Zstd
            from zarr.codecs import BytesCodec, ZstdCodec
            from zarr.core.chunk_grids import RegularChunkGrid
        except ImportError:  # another zarr/numcodecs layout: Zarr reads everything
            return None
        meta = arr.metadata
        if getattr(meta, "zarr_format", None) != 3 or getattr(meta, "storage_transformers", ()):
            return None
        grid = meta.chunk_grid
        if not isinstance(grid, RegularChunkGrid) or tuple(grid.chunk_shape) != (1, *arr.shape[1:]):
            return None
        codecs = tuple(meta.codecs)
        if len(codecs) != 2 or type(codecs[0]) is not BytesCodec or type(codecs[1]) is not ZstdCodec:
            return None
        dtype = np.dtype(arr.dtype)
        endian = codecs[0].endian
        if dtype.kind not in "iufb" or not dtype.isnative:
            return None
        if dtype.itemsize > 1 and getattr(endian, "value", endian) != sys.byteorder:
            return None
        return cls(folder, arr, Zstd())

    def _read_one(self, index: int, out: np.ndarray) -> None:
        key = self.arr.metadata.encode_chunk_key((index, 0, 0))
        try:
            raw = self.folder.joinpath(*key.split("/")).read_bytes()
        except FileNotFoundError:
            out[...] = self.fill_value  # Zarr does not write chunks that hold only the fill value
            return
        except OSError:
            raw = None
        if raw is not None and _zstd_content_size(raw) == out.nbytes:
            try:
                # Decoded in place: no buffer of its own, no copy out of it.
                self.codec.decode(raw, out=out)
                return
            except Exception:  # noqa: BLE001 - Zarr reads it below and raises its own error
                pass
        out[...] = self.arr[index]  # not what this layout promises: let Zarr decide

    def _read_many(self, pairs: list[tuple[int, int]], out: np.ndarray) -> None:
        for row, index in pairs:
            self._read_one(index, out[row])

    def read(self, idx: np.ndarray, rows: np.ndarray, out: np.ndarray) -> None:
        """Read frames ``idx`` of the array into ``out[rows]``, spread over the cores."""
        pairs = list(zip(rows.tolist(), idx.tolist()))
        pool = _frame_pool()
        parts = min(len(pairs), pool._max_workers)
        if parts < 2:
            self._read_many(pairs, out)
            return
        # Contiguous blocks, one per worker: each thread walks its files in order.
        bounds = np.linspace(0, len(pairs), parts + 1).astype(int)
        futures = [pool.submit(self._read_many, pairs[a:b], out) for a, b in zip(bounds[:-1], bounds[1:])]
        # Wait for every block before raising: none may still write into ``out`` afterwards.
        wait(futures)
        for f in futures:
            f.result()


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
    ) -> None:
        self.store = Path(store)
        self.refs = refs
        self.db_path = None if db_path is None else Path(db_path)
        self.run, self.stream, self.field = run, stream, field
        self.frame_shape: tuple[int, int] = refs.frame_shape or (0, 0)
        self.stored_dtype = np.dtype(refs.dtype or "float64")
        self.masked = bool(np.any(refs.group < 0))
        self.dtype = np.promote_types(self.stored_dtype, np.float32) if self.masked else self.stored_dtype
        self.shape: tuple[int, int, int] = (len(refs), *self.frame_shape)
        self._arrays: dict[int, Any] = {}
        self._direct: dict[int, _ZstdFrames | None] = {}
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
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __dask_tokenize__(self) -> tuple:
        h = hashlib.sha1()
        for arr in (self.refs.seq_num, self.refs.group, self.refs.index):
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update("\0".join(self.refs.groups).encode())
        return ("FrameStack", str(self.store.resolve()), h.hexdigest(), self.shape, str(self.dtype))

    # -- reading ------------------------------------------------------------
    def __getitem__(self, key: Any) -> np.ndarray:
        first, rest = _split_key(key)
        positions, out_shape = self._positions(first)
        frames = self._read(positions.ravel())
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

    def _array(self, g: int, seq_num: int) -> Any:
        arr = self._arrays.get(g)
        if arr is None:
            where: dict[str, Any] = {"run": self.run, "stream": self.stream, "field": self.field, "seq_num": seq_num}
            arr = open_zarr_array(self.store, self.refs.groups[g], **where)
            problems = array_layout_problems(arr, self.refs.groups[g], self.frame_shape, self.stored_dtype)
            if problems:
                raise FrameMismatchError(problems[0], self.store, **where)
            direct = None
            if not self.masked:  # masked stacks are float: frames need a cast, Zarr does it
                direct = _ZstdFrames.for_array(arr, self.store.joinpath(*self.refs.groups[g].split("/")))
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
            arr = self._array(int(g), int(self.refs.seq_num[positions[rows[0]]]))
            bad = (idx < 0) | (idx >= arr.shape[0])
            if bad.any():
                k = rows[np.flatnonzero(bad)[0]]
                raise FrameIndexError(
                    f"index_in_stack {int(indices[k])} is beyond array {self.refs.groups[g]!r} "
                    f"of {arr.shape[0]} frames",
                    self.store,
                    run=self.run,
                    stream=self.stream,
                    seq_num=int(self.refs.seq_num[positions[k]]),
                    field=self.field,
                )
            direct = self._direct.get(int(g))
            if direct is not None:
                direct.read(idx, rows, out)
            else:
                self._read_group(arr, idx, rows, out)
        return out

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
