"""The core of the ``resonance`` xarray engine: a run, a stream or a whole beamtime from the lazy builder.

:class:`RunEngine` calls :func:`~intake_resonance.datasets.build.build_run`, the
builder every face uses, and adds what xarray's backend API asks (groups,
a tree); the registered engine
(:class:`intake_resonance.faces.xarray_backend.ResonanceBackendEntrypoint`)
adds ``guess_can_open``. Imports only xarray, dask and the layer below: xarray imports
every installed engine, so this stays light.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import xarray as xr
from xarray.backends import BackendEntrypoint

from ..beamtime import records
from ..beamtime.errors import RunNotFoundError
from ..beamtime.format import Database
from .build import build_run
from .groups import run_groups
from .location import open_database

__all__ = ["RunEngine", "split_group"]


def split_group(group: str | None) -> tuple[str, str]:
    """``"<uid>"`` or ``"/<uid>/<stream>"`` -> ``(uid_or_prefix, stream)``; stream defaults to ``primary``."""
    parts = [p for p in (group or "").strip("/").split("/") if p]
    if not parts or len(parts) > 2:
        raise ValueError(f"group must be '<uid>' or '<uid>/<stream>', not {group!r}")
    return parts[0], parts[1] if len(parts) == 2 else "primary"


def _source(filename_or_obj: Any) -> Database | str:
    if isinstance(filename_or_obj, Database):
        return filename_or_obj
    if not isinstance(filename_or_obj, (str, os.PathLike)):
        raise TypeError(f"the resonance engine opens a beamtime .db path, not {type(filename_or_obj).__name__}")
    return os.fspath(filename_or_obj)


def _drop_list(drop_variables: str | Iterable[str] | None) -> list[str] | None:
    return [drop_variables] if isinstance(drop_variables, str) else (None if drop_variables is None else list(drop_variables))


class RunEngine(BackendEntrypoint):
    """The engine's reading: a path and a ``group``, through :func:`~.build.build_run`.

    ``open_dataset`` closes the database it opened before it returns;
    ``open_groups_as_dict`` and ``open_datatree`` give the whole beamtime.
    What these options mean for users is told on the registered engine,
    :class:`intake_resonance.faces.xarray_backend.ResonanceBackendEntrypoint`.
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
        with open_database(_source(filename_or_obj)) as db:
            if group is None:
                uids = records.list_uids(db)
                raise RunNotFoundError(
                    f"name a run with group='<uid>' or '<uid>/<stream>'; this beamtime has {len(uids)} run(s)"
                    + (f", newest {uids[-1]}" if uids else ""),
                    db.path,
                )
            else:
                uid, stream = split_group(group)
            ds = build_run(db, records.resolve_uid(db, uid), stream, drop_variables=_drop_list(drop_variables), chunks=frame_chunks)[0]
            ds.encoding["source"] = str(db.path.resolve())  # as every face gives it (xarray keeps a source set here)
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
                "/": xr.Dataset(attrs={"schema_version": db.schema_version})
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
