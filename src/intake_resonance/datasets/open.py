"""One run and one stream as an :class:`xarray.Dataset`: the one builder every face uses.

Every way in (intake v1 and 2, DataTrees, stacking, the command line,
tiled, ``virtual/``) calls :func:`open_run_dataset` (or, for many runs,
:func:`~intake_resonance.datasets.many.open_many`):
:func:`~intake_resonance.datasets.build.build_run` builds the run and
:func:`~intake_resonance.datasets.build.finish_run` makes its frames dask
arrays. The
``resonance`` xarray engine is a thin class over ``build_run`` too. So a run
opened through any face has the same variables, attributes, chunks and
encoding. Names from the modules below (``build``, ``attrs``, ``layout``)
are re-exported here.

Layout (see the design notes): a ``time`` dimension with one row per event in
``seq_num`` order, coordinates ``time`` (datetime64[ns], UTC) and ``seq_num``;
one variable per scalar field, except that a motor (descriptor ``source:
motor``) is a coordinate along ``time``; one lazy variable per image field
with dims ``(time, <field>_x, <field>_y)``. Attributes are netCDF-safe.

Typing rules for scalar fields, applied to the values present (a missing
field and a JSON ``null`` are treated alike):

- all integers -> int64; with gaps -> float64 with NaN;
- any float (or ints and floats) -> float64, gaps NaN;
- all booleans -> bool; with gaps -> float64 (1.0 / 0.0 / NaN);
- strings -> object holding str (variable width); gaps None;
- equal-length lists -> a 2-D variable ``(time, <field>_dim_0)``;
- anything else (mixed kinds, ragged lists) -> object, values as stored.

A field's variable is named after it, unless the name is unsafe or taken
(``time``, ``seq_num``, a frame dimension, ``/``, NUL, empty): then
:func:`~intake_resonance.beamtime.names.variable_names` gives it a safe, unique name
and its ``field_name`` attribute keeps the name as stored.

A declared field that no event carries gets no variable. A declared image
field without any frame keeps its variable (all NaN) when its descriptor
gives a 2-D ``shape``.

Dask names
----------
:func:`finish_run` chunks the frame variables by their ``preferred_chunks``
(what xarray does with ``chunks={}``), naming them from what was read: the
resolved ``.db`` path, the run, the stream and a digest of the frame
references. So the names are the same through every face, whatever the
path's spelling, and change as soon as a live run gains events (the ``.db`` modification time is not enough: a
commit in WAL mode leaves it alone). A direct
``xr.open_dataset("bt.db", engine="resonance", chunks={})`` gets the same
chunks, named by xarray's own rule for paths (path and modification time).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable
from typing import Any

import xarray as xr

from ..beamtime import records
from ..beamtime.format import Database
from .attrs import netcdf_safe, run_attrs
from .build import FrameArray, build_run, build_run_dataset, finish_run, frame_chunks
from .groups import Opener, run_groups, stream_names
from .layout import run_layout
from .location import open_database

__all__ = [
    "FrameArray",
    "build_run",
    "build_run_dataset",
    "finish_run",
    "frame_chunks",
    "netcdf_safe",
    "open_database",
    "open_run_dataset",
    "open_run_tree",
    "run_attrs",
    "run_groups",
    "run_layout",
    "stream_names",
]


def open_run_dataset(
    beamtime: Database | str | os.PathLike[str],
    uid: str,
    stream: str = "primary",
    *,
    chunks: Any = None,
    drop_variables: Iterable[Hashable] | str | None = None,
) -> xr.Dataset:
    """Open one stream of one run as an :class:`xarray.Dataset` with dask-backed frames.

    Parameters
    ----------
    beamtime : Database or path
        The beamtime's ``.db`` (opened read-only; a path is opened and closed
        here, a ``Database`` stays open and belongs to the caller).
    uid : str
        The run's exact uid or a unique prefix of 6+ characters.
    stream : str
        Stream name (default ``"primary"``).
    chunks : int, tuple, dict or "auto", optional
        Dask chunks of the image variables (see :func:`frame_chunks`);
        default: whole frames grouped to about ``dask.config["array.chunk-size"]``.
    drop_variables : str or iterable of str, optional
        Variables not to build (their frames are never touched).

    Returns
    -------
    xarray.Dataset
        Frames are not read: image variables are dask arrays.
        ``encoding["source"]`` is the ``.db``'s absolute, resolved path. The
        Dataset holds no open connection; ``ds.close()`` lets its frame
        readers drop the Zarr arrays they opened.

    Raises
    ------
    RunNotFoundError
        Unknown or ambiguous uid, or a stream the (closed) run does not have.
    BeamtimeError
        Any broken row met while building (bad JSON names its seq_num).
    """
    drop = _drop_names(drop_variables)
    with open_database(beamtime) as db:
        full = records.resolve_uid(db, uid)
        ds, stacks = build_run(db, full, stream, drop_variables=drop, chunks=chunks)
        return finish_run(db, full, stream, ds, stacks)


def _drop_names(drop_variables: Iterable[Hashable] | str | None) -> list[str]:
    return [drop_variables] if isinstance(drop_variables, str) else [str(v) for v in drop_variables or ()]


def open_run_tree(beamtime: Database | str | os.PathLike[str], uid: str, *, chunks: Any = None) -> xr.DataTree:
    """All streams of one run as a :class:`xarray.DataTree` (``/<stream>`` nodes, run attrs at the root).

    Each stream is opened by :func:`open_run_dataset`, so its variables and
    dask names equal a single stream's.
    """
    with open_database(beamtime) as db:
        return xr.DataTree.from_dict(run_groups(db, records.resolve_uid(db, uid), prefix="", opener=_dask_opener(chunks)))


def _dask_opener(chunks: Any) -> Opener:
    def opener(db: Database, uid: str, stream: str, drop_variables: Iterable[Hashable] | None) -> xr.Dataset:
        return open_run_dataset(db, uid, stream, chunks=chunks, drop_variables=drop_variables)

    return opener


