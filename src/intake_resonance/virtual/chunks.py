"""Each frame of an image field mapped to the chunk file that holds it, as a VirtualiZarr manifest.

A beamtime's frames are already Zarr chunks: one file per frame in the
array ``runs/<uid>/<field>`` of the ``.zarr`` store (chunks ``(1, x, y)``).
A virtual array over a stream's events is therefore the source array's
metadata with one chunk per event, each pointing at a whole chunk file
(offset 0, length its size). Nothing is read but array metadata and file
sizes.

What maps and what is refused:

- Frames may come from several arrays and in any order (``index_in_stack``
  is followed, not assumed), as long as every array has the same chunk
  codecs, dtype and fill value: a virtual array has one codec chain.
- Each chunk must hold exactly one frame (chunk shape ``(1, x, y)``, also
  for a shard); no storage transformers. Anything else is a
  :class:`~intake_resonance.beamtime.errors.NotVirtualizableError`.
- Events without a frame are absent chunks. As the engine does, the frames
  are then promoted to a floating dtype (``int32`` -> ``float64``) and the
  gaps are NaN: float frames only need NaN as fill value; integer frames get
  an ``numcodecs.astype`` filter in front of their codecs, which decodes the
  stored integers as floats (a codec Zarr Python reads through numcodecs;
  other Zarr implementations may not know it).
- A referenced chunk that is absent raises
  :class:`~intake_resonance.beamtime.errors.FramesMissingError` (unless
  ``resonance.absent-chunks`` is ``"fill"``: then it stays absent and reads
  as the fill value, as the engine does), a folder in its place
  :class:`~intake_resonance.beamtime.errors.FrameDecodeError`.

Every chunk path is found through
:class:`~intake_resonance.beamtime.store.BeamtimeStore`: a ``zarr_group`` or
a link that leads outside the store is refused before anything is
referenced, and the URL written is the file's resolved path inside the
store's resolved root.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from ..beamtime.errors import FrameDecodeError, FrameIndexError, FrameMismatchError, FramesMissingError, NotVirtualizableError
from ..beamtime.format import open_zarr_array
from ..beamtime.frames import array_layout_problems
from ..beamtime.records import FrameRefs
from ..beamtime.store import BeamtimeStore, absent_chunks_policy

__all__ = ["ChunkMap", "chunk_map", "json_ready", "manifest_array", "store_url_prefix", "v2_as_v3"]

#: What a virtual array's metadata may differ in between the arrays of one field.
_PER_ARRAY = ("shape", "dimension_names", "attributes", "chunk_key_encoding")


def store_url_prefix(store: BeamtimeStore) -> str:
    """The ``file://`` URL prefix of every chunk of ``store`` (its resolved root, ending in ``/``).

    Raises
    ------
    NotVirtualizableError
        If the resolved root holds characters a URL must quote (space, ``#``,
        ``%``, ``?``, non-ASCII ...): Icechunk 1.1 does not find the chunks of
        such a location, so they are refused here rather than written unreadable.
    """
    real = os.path.realpath(store.root)
    url = Path(real).as_uri()
    if url != "file://" + real:
        raise NotVirtualizableError(
            f"the store's resolved path {real!r} holds characters a URL must quote (space, '#', '%', '?', non-ASCII): "
            "Icechunk cannot read virtual chunks there; move or mount the beamtime under a plain path",
            store.root,
        )
    return url + "/"


@dataclass(frozen=True)
class ChunkMap:
    """Where each event's frame lives, as a virtual array of one chunk per event.

    Attributes
    ----------
    metadata : dict
        Zarr v3 array metadata of the virtual array (shape ``(n, x, y)``,
        chunks ``(1, x, y)``, the source codecs, ``"."`` chunk keys).
    paths : ndarray of str
        Per event, its chunk file's key inside the store (``/``-separated,
        links resolved); ``""`` when absent.
    lengths : ndarray of uint64
        Per event, the chunk file's size in bytes (0 when absent).
    mtimes : ndarray of int64
        Per event, the chunk file's modification time in ns (0 when absent):
        with the sizes, what tells a rewritten chunk file from the one referenced.
    """

    metadata: dict[str, Any]
    paths: np.ndarray
    lengths: np.ndarray
    mtimes: np.ndarray

    @property
    def n_chunks(self) -> int:
        """Chunks referenced (events with a frame)."""
        return int(np.count_nonzero(self.lengths))

    def manifest_array(self, prefix: str) -> Any:
        """The map as a :class:`virtualizarr.manifests.ManifestArray`, each chunk's URL ``prefix`` + its key.

        Parameters
        ----------
        prefix : str
            What the store's keys hang from: the store's ``file://`` URL
            (:func:`store_url_prefix`) for a reader in this process, or a
            named Icechunk container (``vcc://<name>/``) for a repository
            that moves with its beamtime.
        """
        from virtualizarr.manifests import ChunkManifest

        n = len(self.paths)
        urls = [prefix + quote(p) if p else "" for p in self.paths]
        paths: Any = np.asarray(urls, dtype=np.dtypes.StringDType()).reshape(n, 1, 1)
        manifest = ChunkManifest.from_arrays(
            paths=paths,
            offsets=np.zeros((n, 1, 1), dtype=np.uint64),
            lengths=np.asarray(self.lengths, dtype=np.uint64).reshape(n, 1, 1),
            validate_paths=False,  # URLs made here, some of them relative to a named container
        )
        return manifest_array(self.metadata, manifest)


def manifest_array(metadata: dict[str, Any], manifest: Any) -> Any:
    """A ``ManifestArray`` from a Zarr v3 ``zarr.json`` document and a chunk manifest.

    VirtualiZarr takes the metadata as keyword arguments of zarr's array
    metadata; only the data type must be zarr's own object, which the
    public :func:`zarr.dtype.parse_dtype` makes.
    """
    from virtualizarr.manifests import ManifestArray
    from zarr.dtype import parse_dtype

    md = {k: v for k, v in metadata.items() if k not in ("zarr_format", "node_type")}
    zdtype = parse_dtype(md["data_type"], zarr_format=3)
    md["data_type"] = zdtype
    md["fill_value"] = zdtype.from_json_scalar(md.get("fill_value"), zarr_format=3)
    md.setdefault("chunk_key_encoding", {"name": "default", "configuration": {"separator": "/"}})
    md.setdefault("attributes", {})
    md.setdefault("dimension_names", None)
    return ManifestArray(metadata=md, chunkmanifest=manifest)


def chunk_map(
    store: BeamtimeStore,
    refs: FrameRefs,
    dims: tuple[str, str, str],
    *,
    dtype: np.dtype,
    run: str | None = None,
    stream: str | None = None,
    field: str | None = None,
) -> ChunkMap:
    """Map one image field's frames (one entry per event of a stream) to their chunk files.

    Parameters
    ----------
    store : BeamtimeStore
        The beamtime's store; every path goes through its boundary.
    refs : FrameRefs
        The field's frame map for a stream (``records.frame_refs`` with a stream).
    dims : tuple of str
        Dimension names of the frame variable.
    dtype : numpy.dtype
        The dtype the engine gives the variable (promoted to float when an
        event has no frame).
    run, stream, field : str, optional
        For error messages.

    Raises
    ------
    NotVirtualizableError
        Chunks that do not hold exactly one frame, arrays of the field that
        differ in codecs, dtype or fill value, storage transformers.
    StoreEscapeError, FramesMissingError, FrameDecodeError, FrameIndexError, FrameMismatchError
        As reading the frames would raise them.
    """
    where: dict[str, Any] = {"run": run, "stream": stream, "field": field}
    real_root = os.path.realpath(store.root)
    n = len(refs)
    shape = refs.frame_shape
    if shape is None or not refs.groups:  # a declared field without any frame yet: every chunk absent
        full = (n, *(shape or (0, 0)))
        none = np.full(n, "", dtype=object)
        return ChunkMap(_metadata(_plain_codecs(dtype), dtype, full, dims), none, np.zeros(n, np.uint64), np.zeros(n, np.int64))
    arrays = [open_zarr_array(store, group, **where) for group in refs.groups]
    common: dict[str, Any] | None = None
    for group, arr in zip(refs.groups, arrays):
        problems = array_layout_problems(arr, group, shape, np.dtype(refs.dtype) if refs.dtype else None)
        if problems:
            raise FrameMismatchError("; ".join(problems), store.root, **where)
        md = _v3_metadata(arr, group, store, where)
        grid = md.get("chunk_grid", {})
        chunk_shape = tuple(grid.get("configuration", {}).get("chunk_shape", ())) if grid.get("name") == "regular" else None
        if chunk_shape != (1, *shape):
            raise NotVirtualizableError(
                f"array {group!r} stores chunks of shape {chunk_shape or grid!r}, not one frame (1, {shape[0]}, {shape[1]}) "
                "per chunk: its chunks cannot be referenced frame by frame",
                store.root,
                **where,
            )
        if md.get("storage_transformers"):
            raise NotVirtualizableError(
                f"array {group!r} uses storage transformers, which a virtual array cannot carry", store.root, **where
            )
        this = {k: v for k, v in md.items() if k not in _PER_ARRAY}
        if common is not None and this != common:
            raise NotVirtualizableError(
                f"the field's frames lie in arrays with different codecs, dtype or fill value ({refs.groups[0]!r}, {group!r}): "
                "one virtual array has one codec chain",
                store.root,
                **where,
            )
        common = this
    assert common is not None
    paths, lengths, mtimes = _chunk_files(store, refs, arrays, real_root, where)
    md = dict(common)
    if np.any(refs.group < 0):  # events without frames: promoted to float (as the engine does), gaps NaN
        md = _promoted(md, np.dtype(refs.dtype or dtype), np.dtype(dtype))
    return ChunkMap(_metadata(md["codecs"], np.dtype(dtype), (n, *shape), dims, base=md), paths, lengths, mtimes)


def _v3_metadata(arr: Any, group: str, store: BeamtimeStore, where: dict[str, Any]) -> dict[str, Any]:
    """The array's metadata as a Zarr v3 ``zarr.json`` document (format 2 arrays converted, codecs included)."""
    md: dict[str, Any] = json_ready(arr.metadata.to_dict())
    if md.get("zarr_format") == 3:
        return md
    try:
        return v2_as_v3(md)
    except ValueError as exc:
        raise NotVirtualizableError(f"array {group!r} cannot be written as Zarr v3: {exc}", store.root, **where) from exc


def v2_as_v3(md: dict[str, Any]) -> dict[str, Any]:
    """A Zarr format 2 array's metadata (``.zarray`` as a dict) as the format 3 document that reads the same chunks.

    The v2 dtype becomes the data type plus the ``bytes`` codec's
    endianness; filters and the compressor keep their numcodecs
    implementation (``numcodecs.<id>``), except ``zstd`` and ``gzip``, which
    Zarr v3 names itself. Column-major (``order: "F"``) arrays are refused:
    their chunk bytes are transposed.

    Raises
    ------
    ValueError
        For what has no v3 form here (``F`` order, structured or object dtypes).
    """
    if md.get("order", "C") != "C":
        raise ValueError(f"order {md.get('order')!r}: chunks stored column-major are not mapped")
    dtype = np.dtype(md["dtype"])
    if dtype.kind not in "biuf" or dtype.fields is not None:
        raise ValueError(f"dtype {md['dtype']!r} has no plain Zarr v3 data type here")
    if dtype.itemsize == 1:
        serializer: dict[str, Any] = {"name": "bytes"}
    else:
        serializer = {"name": "bytes", "configuration": {"endian": "big" if dtype.byteorder == ">" else "little"}}
    codecs = [_v3_codec(f) for f in md.get("filters") or ()]
    codecs.append(serializer)
    if md.get("compressor"):
        codecs.append(_v3_codec(md["compressor"]))
    fill = md.get("fill_value")
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": list(md["shape"]),
        "data_type": dtype.newbyteorder("=").name,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(md["chunks"])}},
        "chunk_key_encoding": {"name": "v2", "configuration": {"separator": md.get("dimension_separator") or "."}},
        "fill_value": 0 if fill is None else fill,
        "codecs": codecs,
        "attributes": dict(md.get("attributes") or {}),
    }


def _v3_codec(config: dict[str, Any]) -> dict[str, Any]:
    conf = {k: v for k, v in config.items() if k != "id"}
    name = str(config["id"])
    if name == "zstd":
        return {"name": "zstd", "configuration": {"level": int(conf.get("level", 0)), "checksum": bool(conf.get("checksum", False))}}
    if name == "gzip":
        return {"name": "gzip", "configuration": {"level": int(conf.get("level", 1))}}
    return {"name": f"numcodecs.{name}", "configuration": conf}


def json_ready(value: Any) -> Any:
    """Tuples as lists and codec objects as their dicts, as the metadata's JSON document holds them."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    to_dict = getattr(value, "to_dict", None) or getattr(value, "get_config", None)
    return json_ready(to_dict()) if callable(to_dict) else value


def _chunk_files(
    store: BeamtimeStore, refs: FrameRefs, arrays: list[Any], real_root: str, where: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(refs)
    paths = np.full(n, "", dtype=object)
    lengths = np.zeros(n, dtype=np.uint64)
    mtimes = np.zeros(n, dtype=np.int64)
    fill = absent_chunks_policy() == "fill"
    for i in np.flatnonzero(refs.group >= 0):
        g, index, seq = int(refs.group[i]), int(refs.index[i]), int(refs.seq_num[i])
        arr, group = arrays[g], refs.groups[g]
        if not 0 <= index < arr.shape[0]:
            raise FrameIndexError(
                f"index_in_stack {index} is beyond array {group!r} of {arr.shape[0]} frames", store.root, **where, seq_num=seq
            )
        key = f"{group}/{arr.metadata.encode_chunk_key((index, 0, 0))}"
        path = store.path_of(key)  # the boundary: text checks, links leading out refused
        real = os.path.realpath(path)
        try:
            st = os.stat(real)
        except (FileNotFoundError, NotADirectoryError):
            if fill:
                continue
            raise FramesMissingError(
                f"chunk {key!r} is absent from the store: the frame was never stored or was deleted", store.root, **where, seq_num=seq
            ) from None
        if not stat.S_ISREG(st.st_mode):
            raise FrameDecodeError(f"chunk {key!r} is not a file", store.root, **where, seq_num=seq)
        if not real.startswith(real_root + os.sep):  # path_of checked it; the key must say the same place
            raise FrameDecodeError(f"chunk {key!r} resolves to {real}, outside {real_root}", store.root, **where, seq_num=seq)
        paths[i] = os.path.relpath(real, real_root).replace(os.sep, "/")
        lengths[i] = st.st_size
        mtimes[i] = st.st_mtime_ns
    return paths, lengths, mtimes


def _promoted(md: dict[str, Any], stored: np.dtype, promoted: np.dtype) -> dict[str, Any]:
    """Metadata reading stored frames as ``promoted`` floats, absent chunks as NaN."""
    md = dict(md)
    if stored.kind != "f":
        cast = {"name": "numcodecs.astype", "configuration": {"encode_dtype": stored.str, "decode_dtype": promoted.str}}
        md["codecs"] = [cast, *md["codecs"]]
    md["data_type"] = promoted.name
    md["fill_value"] = "NaN"
    return md


def _plain_codecs(dtype: np.dtype) -> list[dict[str, Any]]:
    return [{"name": "bytes", "configuration": {"endian": "little"}}] if np.dtype(dtype).itemsize > 1 else [{"name": "bytes"}]


def _metadata(
    codecs: list[dict[str, Any]],
    dtype: np.dtype,
    shape: tuple[int, int, int],
    dims: tuple[str, str, str],
    base: dict[str, Any] | None = None,
) -> dict[str, Any]:
    md: dict[str, Any] = dict(base or {"zarr_format": 3, "node_type": "array", "data_type": np.dtype(dtype).name,
                                       "fill_value": "NaN" if np.dtype(dtype).kind == "f" else 0})
    md.update(
        shape=list(shape),
        chunk_grid={"name": "regular", "configuration": {"chunk_shape": [1, max(shape[1], 1), max(shape[2], 1)]}},
        chunk_key_encoding={"name": "default", "configuration": {"separator": "."}},
        codecs=list(codecs),
        dimension_names=list(dims),
        attributes={},
    )
    md.pop("storage_transformers", None)
    return md
