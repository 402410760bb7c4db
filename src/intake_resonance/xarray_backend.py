"""The ``resonance`` xarray engine: beamtimes through ``xr.open_dataset`` and ``xr.open_datatree``.

>>> ds = xr.open_dataset("bt.db", engine="resonance", group="3f2a9c", chunks={})            # doctest: +SKIP
>>> ds = xr.open_dataset("bt.db", engine="resonance", group="3f2a9c/baseline")              # doctest: +SKIP
>>> tree = xr.open_datatree("bt.db", engine="resonance", chunks={})                          # doctest: +SKIP

As with any backend, frames stay on disk until indexed. ``chunks={}`` gives
dask arrays with the preferred chunking: whole frames grouped to about
dask's ``array.chunk-size``, or what ``frame_chunks=`` asks for (an int of
frames per chunk, a tuple, a dict or ``"auto"``); ``chunks=...`` any other.

This module imports only xarray, dask, NumPy and the reading layers below
it: xarray imports every installed engine, so it must stay light.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import xarray as xr
from dask.base import tokenize
from xarray.backends import BackendEntrypoint

from . import records
from .build import build_run
from .dataset import RunLocation, open_database, run_groups
from .errors import BeamtimeError, RunNotFoundError
from .format import Database

__all__ = ["ResonanceBackendEntrypoint", "split_group"]


def split_group(group: str | None) -> tuple[str, str]:
    """``"<uid>"`` or ``"/<uid>/<stream>"`` -> ``(uid_or_prefix, stream)``; stream defaults to ``primary``."""
    parts = [p for p in (group or "").strip("/").split("/") if p]
    if not parts or len(parts) > 2:
        raise ValueError(f"group must be '<uid>' or '<uid>/<stream>', not {group!r}")
    return parts[0], parts[1] if len(parts) == 2 else "primary"


def _source(filename_or_obj: Any) -> Database | str:
    if isinstance(filename_or_obj, RunLocation):
        return filename_or_obj.db
    if isinstance(filename_or_obj, Database):
        return filename_or_obj
    if not isinstance(filename_or_obj, (str, os.PathLike)):
        raise TypeError(f"the resonance engine opens a beamtime .db path, not {type(filename_or_obj).__name__}")
    return os.fspath(filename_or_obj)


def _drop_list(drop_variables: str | Iterable[str] | None) -> list[str] | None:
    return [drop_variables] if isinstance(drop_variables, str) else (None if drop_variables is None else list(drop_variables))


class ResonanceBackendEntrypoint(BackendEntrypoint):
    """Open ALS RSoXS beamtimes (``NAME.db`` + ``NAME.zarr``) with xarray.

    ``group`` names a run by uid or unique prefix, optionally followed by a
    stream (``"<uid>/baseline"``; default ``primary``). ``open_datatree``
    gives the whole beamtime as ``/<uid>/<stream>`` nodes with run
    attributes on each ``/<uid>`` node. ``frame_chunks`` sets the preferred
    chunks of the frame variables (see
    :func:`intake_resonance.dataset.frame_chunks`).

    The database connection is closed before the Dataset is returned: the
    Dataset reads frames from the Zarr store only.
    """

    description = "ALS RSoXS beamtimes (SQLite + Zarr) as runs and streams"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "group", "frame_chunks")
    supports_groups = True

    def open_dataset(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | Iterable[str] | None = None,
        group: str | None = None,
        frame_chunks: Any = None,
    ) -> xr.Dataset:
        location = filename_or_obj if isinstance(filename_or_obj, RunLocation) else None
        with open_database(_source(filename_or_obj)) as db:
            if location is not None:
                uid, stream = location.uid, location.stream
            elif group is None:
                uids = records.list_uids(db)
                raise RunNotFoundError(
                    f"name a run with group='<uid>' or '<uid>/<stream>'; this beamtime has {len(uids)} run(s)"
                    + (f", newest {uids[-1]}" if uids else ""),
                    db.path,
                )
            else:
                uid, stream = split_group(group)
            ds, stacks = build_run(db, uid, stream, drop_variables=_drop_list(drop_variables), chunks=frame_chunks)
        if location is not None:
            # xarray tokenizes the location after this returns: dask names follow what was read.
            location.revision = tokenize(*stacks)
        return ds

    def open_groups_as_dict(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | Iterable[str] | None = None,
        frame_chunks: Any = None,
        **kwargs: Any,
    ) -> dict[str, xr.Dataset]:
        drop = _drop_list(drop_variables)
        with open_database(_source(filename_or_obj)) as db:
            groups: dict[str, xr.Dataset] = {
                "/": xr.Dataset(attrs={"beamtime": str(db.path), "schema_version": db.schema_version})
            }

            def lazy(d: Database, u: str, s: str, v: Any) -> xr.Dataset:
                return build_run(d, u, s, drop_variables=v, chunks=frame_chunks)[0]

            for uid in records.list_uids(db):
                groups.update(run_groups(db, uid, opener=lazy, drop_variables=drop))
        return groups

    def open_datatree(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | Iterable[str] | None = None,
        frame_chunks: Any = None,
        **kwargs: Any,
    ) -> xr.DataTree:
        groups = self.open_groups_as_dict(filename_or_obj, drop_variables=drop_variables, frame_chunks=frame_chunks)
        return xr.DataTree.from_dict(groups)

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        if not isinstance(filename_or_obj, (str, os.PathLike)) or isinstance(filename_or_obj, RunLocation):
            return isinstance(filename_or_obj, RunLocation)
        path = Path(filename_or_obj)
        try:
            with open(path, "rb") as fh:
                if fh.read(16) != b"SQLite format 3\x00":
                    return False
            with Database(path):  # checks the beamtime tables and schema version
                return True
        except (OSError, BeamtimeError):
            return False
