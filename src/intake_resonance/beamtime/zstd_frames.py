"""Direct decoding of frames stored in the beamline's own Zarr layout.

The beamline writes each detector frame as one chunk of a Zarr 3 array,
encoded by the default codecs (``bytes`` in native byte order, then
``zstd``). For that layout a chunk file's decoded bytes are exactly the
frame, so :class:`ZstdFrames` decodes each file straight into the output
array, the frames split over a thread pool. That saves Zarr's per-chunk
buffer and the copy out of it, about a third of a bulk read.

Everything else is Zarr's job. :func:`layout_mismatch` says why an array is
not in this layout (it is logged by :meth:`ZstdFrames.for_array`, at INFO on
this module's logger), and a chunk that is not what the layout promises
(no size in its zstd header, a decoder error) is read by Zarr, which then
decides: it reads it, or raises. Chunk files are read through the store's
boundary (:class:`~intake_resonance.beamtime.store.BeamtimeStore`), as Zarr reads them.

Only public APIs: the array's ``metadata``, ``chunks``, ``shards``,
``filters``, ``serializer``, ``compressors`` and ``fill_value``, the codec
classes of :mod:`zarr.codecs` and :class:`numcodecs.zstd.Zstd`.

The decode pool's size is :func:`decode_threads`.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import numpy as np

from .bounds import zstd_content_size
from .errors import FrameDecodeError
from .store import BeamtimeStore

__all__ = ["ZstdFrames", "decode_threads", "layout_mismatch", "zstd_content_size"]

logger = logging.getLogger(__name__)

#: ``dask.config`` key: threads that decode frames (default: see :func:`decode_threads`).
THREADS_KEY = "resonance.decode-threads"


def _worker_threads() -> int | None:
    """Threads of the dask.distributed worker running this task, or None outside a worker."""
    distributed = sys.modules.get("distributed")
    if distributed is None:  # never imported: this cannot be a worker
        return None
    try:
        worker = distributed.get_worker()
    except (ValueError, AttributeError):
        return None
    # Unknown thread count: decode in the task's own thread, never on every core.
    return int(getattr(getattr(worker, "state", None), "nthreads", None) or 1)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def decode_threads() -> int:
    """How many threads decode frames at once in this process.

    In order: ``dask.config`` ``resonance.decode-threads``; inside a
    dask.distributed worker, the worker's thread count (the pool is shared by
    all its tasks, so decoding never uses more threads than the worker was
    given: one thread means decoding in the task's own thread); dask's
    ``num_workers``; the cores this process may run on.
    """
    import dask.config

    for value in (dask.config.get(THREADS_KEY, None), _worker_threads(), dask.config.get("num_workers", None)):
        if value is not None:
            return max(1, int(value))
    return _cores()


_pool_lock = threading.Lock()
_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _frame_pool(threads: int) -> ThreadPoolExecutor:
    """The decode pool of ``threads`` threads, shared by all readers of this process.

    One per size asked for (a process sees one or two sizes); made again in
    a forked child, whose copy of the parent's pool has no threads.
    """
    key = (os.getpid(), threads)
    with _pool_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = ThreadPoolExecutor(threads, thread_name_prefix="resonance-frames")
        return pool


def layout_mismatch(arr: Any) -> str | None:
    """Why ``arr`` is not in the layout :class:`ZstdFrames` decodes; None when it is.

    The layout: Zarr format 3, ``(n, x, y)``, one frame per chunk, no
    sharding, filters or storage transformers, the ``bytes`` codec in native
    byte order then ``zstd``, an integer, float or bool dtype.
    """
    try:
        from numcodecs.zstd import Zstd  # noqa: F401 - the decoder this layout needs
        from zarr.codecs import BytesCodec, ZstdCodec
    except ImportError as exc:
        return f"zstd decoding is not available ({exc})"
    meta = arr.metadata
    if getattr(meta, "zarr_format", None) != 3:
        return f"Zarr format {getattr(meta, 'zarr_format', '?')}, not 3"
    if arr.ndim != 3:
        return f"{arr.ndim} dimensions, not 3"
    if tuple(arr.chunks) != (1, *arr.shape[1:]):
        return f"chunks {tuple(arr.chunks)}, not one frame {(1, *arr.shape[1:])}"
    if arr.shards is not None:
        return f"sharded ({tuple(arr.shards)})"
    if getattr(meta, "storage_transformers", ()):
        return "storage transformers"
    if arr.filters:
        return f"filters {list(arr.filters)}"
    serializer, compressors = arr.serializer, tuple(arr.compressors)
    if not isinstance(serializer, BytesCodec) or len(compressors) != 1 or not isinstance(compressors[0], ZstdCodec):
        return f"codecs {serializer!r} + {list(compressors)}, not bytes + zstd"
    dtype = np.dtype(arr.dtype)
    if dtype.kind not in "iufb" or not dtype.isnative:
        return f"dtype {dtype.str}, not a native number type"
    endian = getattr(serializer.endian, "value", serializer.endian)
    if dtype.itemsize > 1 and endian != sys.byteorder:
        return f"{endian}-endian chunks on a {sys.byteorder}-endian machine"
    return None


class ZstdFrames:
    """Whole-frame reads of one Zarr 3 array in the beamline's own layout.

    Made by :meth:`for_array`, which says (on this module's logger) when an
    array is read through Zarr instead, and why.

    Parameters
    ----------
    arr : zarr.Array
        The opened array.
    store : BeamtimeStore
        The store it lives in; chunk files are read through it.
    group : str
        The array's path in the store.
    """

    def __init__(self, arr: Any, store: BeamtimeStore, group: str) -> None:
        from numcodecs.zstd import Zstd

        self.arr = arr
        self.store = store
        self.group = group
        self.codec = Zstd()
        self.dtype = np.dtype(arr.dtype)
        self.frame_shape = tuple(arr.shape[1:])
        self.fill_value = arr.fill_value

    @classmethod
    def for_array(cls, arr: Any, store: BeamtimeStore, group: str) -> ZstdFrames | None:
        """The direct reader for ``arr``, or None (logged) when Zarr must read it."""
        reason = layout_mismatch(arr)
        if reason is not None:
            logger.info("%s: array %r is read through Zarr: %s", store.root, group, reason)
            return None
        return cls(arr, store, group)

    def _chunk_key(self, index: int) -> str:
        return f"{self.group}/{self.arr.metadata.encode_chunk_key((index, 0, 0))}"

    def _read_one(self, index: int, out: np.ndarray) -> None:
        # The store raises for a chunk outside the store, an absent one or a folder.
        raw = self.store.read(self._chunk_key(index))
        if raw is None:  # resonance.absent-chunks = "fill": as Zarr reads it
            out[...] = self.fill_value
            return
        expected = self.dtype.itemsize * int(np.prod(self.frame_shape))
        declared = zstd_content_size(raw)
        if declared != expected:
            # Never handed to Zarr: its decoder would grow a buffer as far as the stream says.
            said = "declares no content size" if declared is None else f"declares {declared} bytes"
            raise FrameDecodeError(
                f"chunk {self._chunk_key(index)!r} does not decode: it {said}, not the frame's {expected}", self.store.root
            )
        target = out if out.dtype == self.dtype else np.empty(self.frame_shape, self.dtype)
        try:
            self.codec.decode(raw, out=target)  # in place, into exactly one frame: no buffer of its own
        except Exception as exc:  # noqa: BLE001 - the codec's errors are plain RuntimeErrors
            raise FrameDecodeError(f"chunk {self._chunk_key(index)!r} does not decode: {exc}", self.store.root) from None
        if target is not out:
            out[...] = target

    def _read_many(self, pairs: list[tuple[int, int]], out: np.ndarray) -> None:
        for row, index in pairs:
            self._read_one(index, out[row])

    def read(self, idx: np.ndarray, rows: np.ndarray, out: np.ndarray) -> None:
        """Read frames ``idx`` of the array into ``out[rows]`` over :func:`decode_threads` threads.

        ``out`` may have another dtype than the array (a masked stack is
        float); frames are then cast on the way.
        """
        pairs = list(zip(rows.tolist(), idx.tolist()))
        threads = decode_threads()
        parts = min(len(pairs), threads)
        if parts < 2:
            self._read_many(pairs, out)
            return
        pool = _frame_pool(threads)
        # Contiguous blocks, one per thread: each thread walks its files in order.
        bounds = np.linspace(0, len(pairs), parts + 1).astype(int)
        futures = [pool.submit(self._read_many, pairs[a:b], out) for a, b in zip(bounds[:-1], bounds[1:])]
        # Wait for every block before raising: none may still write into ``out`` afterwards.
        wait(futures)
        for f in futures:
            f.result()
