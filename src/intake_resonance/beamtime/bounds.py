"""Bounds on what one chunk of a frame array may cost: no decompression bomb gets decoded.

A chunk of an array whose chunks hold ``B`` bytes decoded may be at most
:func:`max_chunk_file` bytes on disk (``2 B + 64 KiB``: no codec we read
grows data by more than a few bytes per block), and it must decode to at
most ``B`` bytes. Before a chunk is handed to its codec, :func:`check_chunk`
reads the size the compressed data declares (a zstd frame's content size, a
blosc header's ``nbytes``) or, for gzip and zlib streams, which declare none,
decompresses with an output bound. A chunk that would decode to more, or
that declares no size where its format can, is refused with
:class:`~intake_resonance.beamtime.errors.FrameDecodeError` before any
memory is taken for it.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["MAX_METADATA_BYTES", "ChunkBound", "bound_for", "check_chunk", "max_chunk_file", "zstd_content_size"]

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC = b"\x1f\x8b"


#: The largest metadata document (``zarr.json``, ``.zarray``, ...) read: real ones are a few KB.
MAX_METADATA_BYTES = 16 * 2**20


def max_chunk_file(decoded: int) -> int:
    """The largest chunk file accepted for chunks of ``decoded`` bytes."""
    return 2 * decoded + 64 * 1024


@dataclass(frozen=True)
class ChunkBound:
    """What one array's chunks may be: ``decoded`` bytes at most, compressed by ``codec``.

    ``codec`` is the compressor's name as the array's metadata gives it
    (``zstd``, ``gzip``, ``zlib``, ``blosc``), or ``None`` for other codecs
    (then only the file size is bounded).
    """

    decoded: int
    codec: str | None


def zstd_content_size(raw: bytes) -> int | None:
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


def check_chunk(raw: bytes, bound: ChunkBound) -> str | None:
    """Why ``raw`` (one chunk as stored) must not be decoded; None when it is within ``bound``."""
    if len(raw) > max_chunk_file(bound.decoded):
        return f"is {len(raw)} bytes, more than {max_chunk_file(bound.decoded)} a chunk of {bound.decoded} bytes can need"
    codec = bound.codec
    if codec == "zstd" or (codec is None and raw[:4] == _ZSTD_MAGIC):
        if raw[:4] != _ZSTD_MAGIC:
            return "is not a zstd frame"
        declared = zstd_content_size(raw)
        if declared is None:
            return "is a zstd frame that declares no content size (its decoded size cannot be bounded)"
        if declared > bound.decoded:
            return f"declares {declared} bytes decoded, more than a chunk's {bound.decoded}"
    elif codec == "blosc":
        if len(raw) < 16:
            return "is shorter than a blosc header"
        declared = int.from_bytes(raw[4:8], "little")
        if declared > bound.decoded:
            return f"declares {declared} bytes decoded, more than a chunk's {bound.decoded}"
    elif codec in ("gzip", "zlib") or raw[:2] == _GZIP_MAGIC:
        wbits = 31 if raw[:2] == _GZIP_MAGIC else 15
        try:
            d = zlib.decompressobj(wbits)
            d.decompress(raw, bound.decoded + 1)  # at most one byte more than a chunk: no bomb is inflated
        except zlib.error:
            return None  # not this format after all: the codec says why
        if d.unconsumed_tail:
            return f"inflates to more than a chunk's {bound.decoded} bytes"
    return None


def _codec_name(codec: Any) -> str | None:
    name = getattr(codec, "codec_id", None)  # numcodecs (Zarr format 2)
    if name is None and callable(getattr(codec, "to_dict", None)):
        name = codec.to_dict().get("name")  # a Zarr format 3 codec
    return str(name) if name is not None else None


def bound_for(arr: Any) -> ChunkBound | None:
    """The bound of a (not sharded) Zarr array's chunks; None for a sharded one (its inner chunks are read by range).

    The compressor is named when it is the only one and no filter precedes
    it; otherwise only the chunk files' size is bounded.
    """
    if getattr(arr, "shards", None) is not None:
        return None
    decoded = math.prod(int(c) for c in arr.chunks) * np.dtype(arr.dtype).itemsize
    compressors, filters = tuple(getattr(arr, "compressors", ()) or ()), tuple(getattr(arr, "filters", ()) or ())
    codec = _codec_name(compressors[0]) if len(compressors) == 1 and not filters else None
    return ChunkBound(decoded, codec if codec in ("zstd", "gzip", "zlib", "blosc") else None)
