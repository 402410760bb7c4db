"""Sharded frame arrays: a referenced frame whose inner chunks are not in their shard is an error, not zeros.

Zarr reads an inner chunk that its shard's index marks empty (never
written) as the array's fill value, silently. Frames are only read for
``image_refs`` rows, so such a frame was referenced and lost: before frames
of a sharded array are read, :func:`missing_frame` reads the index of each
shard concerned (Zarr's ``sharding_indexed`` codec: one ``(offset, nbytes)``
pair of unsigned 64-bit integers per inner chunk, ``2**64 - 1`` twice for an
empty one, at the end or the start of the shard file, through a ``bytes``
and optionally a ``crc32c`` codec) and names the first frame with an empty
inner chunk. An index that points past the end of its file is caught by the
store (:class:`~intake_resonance.beamtime.store.BeamtimeStore` refuses a
short read). The ``resonance.absent-chunks: fill`` setting reads them as
Zarr does.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from zarr.abc.store import RangeByteRequest, SuffixByteRequest

from .errors import FrameDecodeError
from .store import BeamtimeStore

__all__ = ["missing_frame"]

_EMPTY = np.uint64(2**64 - 1)


def _index_layout(arr: Any, store: BeamtimeStore) -> tuple[dict[str, Any], str, int]:
    """The sharding codec's configuration, the index's byte order and its size in bytes."""
    codecs = arr.metadata.to_dict().get("codecs") or []
    config = codecs[0].get("configuration", {}) if codecs and codecs[0].get("name") == "sharding_indexed" else None
    if config is None:
        raise FrameDecodeError("a sharded array whose first codec is not sharding_indexed", store.root)
    index_codecs = config.get("index_codecs") or []
    names = [c.get("name") for c in index_codecs]
    if names not in (["bytes"], ["bytes", "crc32c"]):
        raise FrameDecodeError(f"shard index codecs {names} cannot be checked (bytes, then crc32c, can)", store.root)
    endian = (index_codecs[0].get("configuration") or {}).get("endian", "little")
    per_shard = math.prod(s // c for s, c in zip(arr.shards, arr.chunks))
    return config, "<" if endian == "little" else ">", per_shard * 16 + 4 * (len(names) == 2)


def missing_frame(arr: Any, store: BeamtimeStore, group: str, indices: np.ndarray) -> int | None:
    """The first of ``indices`` (frames along axis 0 of the sharded ``arr``) with an inner chunk its shard lacks.

    Parameters
    ----------
    arr : zarr.Array
        A sharded frame array ``(n, x, y)`` of the store.
    store : BeamtimeStore
    group : str
        The array's path in the store.
    indices : numpy.ndarray
        Frame indices about to be read.

    Returns
    -------
    int or None
        A frame index whose inner chunks are not all written; None when
        every frame is there. A shard file that is absent altogether is the
        store's :class:`~intake_resonance.beamtime.errors.FramesMissingError`.
    """
    config, order, size = _index_layout(arr, store)
    at_end = config.get("index_location", "end") == "end"
    per_axis = [s // c for s, c in zip(arr.shards, arr.chunks)]
    shard_frames, chunk_frames = int(arr.shards[0]), int(arr.chunks[0])
    wanted = np.unique(np.asarray(indices, dtype=np.int64))
    for shard in np.unique(wanted // shard_frames).tolist():
        key = f"{group}/{arr.metadata.encode_chunk_key((shard, *[0] * (arr.ndim - 1)))}"
        raw = store.read(key, SuffixByteRequest(size) if at_end else RangeByteRequest(0, size))
        if raw is None:  # absent and read as the fill value (resonance.absent-chunks: fill)
            continue
        if len(raw) < size:
            raise FrameDecodeError(f"shard {key!r} is shorter ({len(raw)} bytes) than its index ({size} bytes)", store.root)
        entries = np.frombuffer(raw, dtype=f"{order}u8", count=(size // 16) * 2).reshape(*per_axis, 2)
        empty = (entries == _EMPTY).all(axis=-1).reshape(per_axis[0], -1).any(axis=1)  # per inner chunk along axis 0
        in_shard = wanted[wanted // shard_frames == shard]
        lost = in_shard[empty[(in_shard - shard * shard_frames) // chunk_frames]]
        if len(lost):
            return int(lost[0])
    return None
