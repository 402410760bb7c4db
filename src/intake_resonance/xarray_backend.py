"""The ``resonance`` xarray engine: beamtimes through ``xr.open_dataset`` and ``xr.open_datatree``.

>>> ds = xr.open_dataset("bt.db", engine="resonance", group="3f2a9c")            # doctest: +SKIP
>>> ds = xr.open_dataset("bt.db", engine="resonance", group="3f2a9c/baseline")   # doctest: +SKIP
>>> tree = xr.open_datatree("bt.db", engine="resonance")                          # doctest: +SKIP

As with any backend, frames stay on disk until indexed; ``chunks={}`` gives
dask arrays with the preferred chunking (whole frames grouped to about
dask's ``array.chunk-size``), ``chunks=...`` any other.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing

from . import records
from .dataset import frame_chunks, open_run_dataset, run_groups
from .errors import BeamtimeError, RunNotFoundError
from .format import Database
from .frames import FrameStack

__all__ = ["ResonanceBackendEntrypoint", "FrameArray", "split_group"]


class FrameArray(BackendArray):
    """xarray's lazy-array view of a :class:`FrameStack` (outer indexing)."""

    def __init__(self, stack: FrameStack) -> None:
        self.stack = stack
        self.shape = stack.shape
        self.dtype = stack.dtype

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER_1VECTOR, self.stack.__getitem__
        )


def _lazy_wrap(stack: FrameStack, name: str, chunks: Any) -> Any:
    return indexing.LazilyIndexedArray(FrameArray(stack))


def split_group(group: str | None) -> tuple[str, str]:
    """``"<uid>"`` or ``"/<uid>/<stream>"`` -> ``(uid_or_prefix, stream)``; stream defaults to ``primary``."""
    parts = [p for p in (group or "").strip("/").split("/") if p]
    if not parts or len(parts) > 2:
        raise ValueError(f"group must be '<uid>' or '<uid>/<stream>', not {group!r}")
    return parts[0], parts[1] if len(parts) == 2 else "primary"


def _set_preferred_chunks(ds: xr.Dataset) -> xr.Dataset:
    for var in ds.data_vars.values():
        data = var.variable._data
        if isinstance(data, indexing.LazilyIndexedArray) and isinstance(data.array, FrameArray):
            stack = data.array.stack
            sizes = frame_chunks(stack.shape[0], stack.frame_shape, stack.dtype)
            var.encoding["preferred_chunks"] = dict(zip(var.dims, sizes))
    return ds


def _database(filename_or_obj: Any) -> Database:
    if isinstance(filename_or_obj, Database):
        return filename_or_obj
    if not isinstance(filename_or_obj, (str, os.PathLike)):
        raise TypeError(f"the resonance engine opens a beamtime .db path, not {type(filename_or_obj).__name__}")
    return Database(os.fspath(filename_or_obj))


class ResonanceBackendEntrypoint(BackendEntrypoint):
    """Open ALS RSoXS beamtimes (``NAME.db`` + ``NAME.zarr``) with xarray.

    ``group`` names a run by uid or unique prefix, optionally followed by a
    stream (``"<uid>/baseline"``; default ``primary``). ``open_datatree``
    gives the whole beamtime as ``/<uid>/<stream>`` nodes with run
    attributes on each ``/<uid>`` node.
    """

    description = "ALS RSoXS beamtimes (SQLite + Zarr) as runs and streams"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "group")
    supports_groups = True

    def open_dataset(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | Iterable[str] | None = None,
        group: str | None = None,
    ) -> xr.Dataset:
        db = _database(filename_or_obj)
        if group is None:
            uids = [r.uid for r in records.list_runs(db)]
            raise RunNotFoundError(
                f"name a run with group='<uid>' or '<uid>/<stream>'; this beamtime has {len(uids)} run(s)"
                + (f", newest {uids[-1]}" if uids else ""),
                db.path,
            )
        uid, stream = split_group(group)
        drop = [drop_variables] if isinstance(drop_variables, str) else drop_variables
        ds = open_run_dataset(db, uid, stream, drop_variables=drop, wrap_frames=_lazy_wrap)
        return _set_preferred_chunks(ds)

    def open_groups_as_dict(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | Iterable[str] | None = None,
        **kwargs: Any,
    ) -> dict[str, xr.Dataset]:
        db = _database(filename_or_obj)
        drop = [drop_variables] if isinstance(drop_variables, str) else drop_variables
        groups: dict[str, xr.Dataset] = {
            "/": xr.Dataset(attrs={"beamtime": str(db.path), "schema_version": db.schema_version})
        }
        for run in records.list_runs(db):
            for path, ds in run_groups(db, run.uid, wrap_frames=_lazy_wrap, drop_variables=drop).items():
                groups[path] = _set_preferred_chunks(ds)
        return groups

    def open_datatree(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | Iterable[str] | None = None,
        **kwargs: Any,
    ) -> xr.DataTree:
        groups = self.open_groups_as_dict(filename_or_obj, drop_variables=drop_variables)
        return xr.DataTree.from_dict(groups)

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        if not isinstance(filename_or_obj, (str, os.PathLike)):
            return False
        path = Path(filename_or_obj)
        try:
            with open(path, "rb") as fh:
                if fh.read(16) != b"SQLite format 3\x00":
                    return False
            Database(path)  # checks the beamtime tables and schema version
        except (OSError, BeamtimeError):
            return False
        return True
