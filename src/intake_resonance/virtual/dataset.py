"""One run and one stream as a virtual Dataset: our variables and attrs, frames as chunk references.

The Dataset is built by the engine's own builder
(:func:`~intake_resonance.datasets.build.build_run`, what
:func:`~intake_resonance.datasets.open.open_run_dataset` opens), so its scalar
columns, coordinates, dims, names and attributes are those of every other
face. Only the frame variables change: each becomes a VirtualiZarr
``ManifestArray`` (:mod:`.chunks`) with the same dims, dtype and attrs.
Written to Icechunk, the scalars are stored as small native arrays and the
frames as references to the chunk files of the beamtime's store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from ..beamtime.errors import NotVirtualizableError
from ..beamtime.format import Database
from ..beamtime.store import BeamtimeStore
from ..datasets.build import build_run
from .chunks import ChunkMap, chunk_map

__all__ = ["VirtualRun", "encoded_attrs", "virtual_run_dataset"]



def encoded_attrs(attrs: dict[Any, Any]) -> dict[str, Any]:
    """Attributes as xarray writes them into Zarr metadata: NumPy arrays as lists, NumPy scalars as Python ones."""
    return {str(k): _json_value(v) for k, v in attrs.items()}


def _json_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value

@dataclass
class VirtualRun:
    """A stream of a run ready to be written.

    Attributes
    ----------
    dataset : xarray.Dataset
        Scalars in memory, frame variables backed by ``ManifestArray``.
    maps : dict of str to ChunkMap
        Per frame variable, where its chunks are.
    """

    dataset: xr.Dataset
    maps: dict[str, ChunkMap]

    @property
    def n_chunks(self) -> int:
        """Chunk files referenced over all frame variables."""
        return sum(m.n_chunks for m in self.maps.values())


def virtual_run_dataset(db: Database, store: BeamtimeStore, uid: str, stream: str, prefix: str) -> VirtualRun:
    """Build one stream of one run as a virtual Dataset.

    Parameters
    ----------
    db : Database
        The beamtime, open read-only.
    store : BeamtimeStore
        Its Zarr store (the boundary every chunk path goes through).
    uid : str
        A full run uid.
    stream : str
        The stream.
    prefix : str
        What chunk keys hang from in the manifests (see
        :meth:`~intake_resonance.virtual.chunks.ChunkMap.manifest_array`).

    Returns
    -------
    VirtualRun

    Raises
    ------
    NotVirtualizableError
        A frame field whose chunks do not map one-to-one (see :mod:`.chunks`).
    BeamtimeError
        Whatever opening the run raises (broken rows, frames missing, a path leaving the store).
    """
    ds, stacks = build_run(db, uid, stream)
    try:
        for name, var in ds.variables.items():
            if var.dtype == object and not _all_text(var.values):  # text with gaps, mixed kinds, ragged lists
                ds.close()
                raise NotVirtualizableError(
                    f"variable {name!r} holds Python objects (text with missing values, mixed kinds or ragged lists): "
                    "Zarr has no type that reads them back as they are (text gaps would come back as '')",
                    db.path,
                    run=uid,
                    stream=stream,
                    field=str(var.attrs.get("field_name", name)),
                )
        # The builder adds frame variables last, one per frame reader, in the same order.
        frame_names = [str(name) for name, var in ds.data_vars.items() if "preferred_chunks" in var.encoding]
        if len(frame_names) != len(stacks):  # pragma: no cover - the builder's own invariant
            raise AssertionError(f"frame variables {frame_names} do not match {len(stacks)} frame readers")
        maps: dict[str, ChunkMap] = {}
        out = ds.copy(deep=False)
        for name, stack in zip(frame_names, stacks):
            var = ds[name].variable
            dims = (str(var.dims[0]), str(var.dims[1]), str(var.dims[2]))
            cmap = chunk_map(store, stack.refs, dims, dtype=stack.dtype, run=uid, stream=stream, field=stack.field)
            maps[name] = cmap
            out[name] = xr.Variable(var.dims, cmap.manifest_array(prefix), dict(var.attrs))
    finally:
        ds.close()
    out.encoding = {}
    return VirtualRun(out, maps)


def _all_text(values: Any) -> bool:
    """Whether an object array holds strings only (Zarr stores them as variable-length text and reads them back so)."""
    return all(isinstance(v, str) for v in values.ravel())
