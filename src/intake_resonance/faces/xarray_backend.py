"""The ``resonance`` xarray engine: beamtimes through ``xr.open_dataset`` and ``xr.open_datatree``.

>>> ds = xr.open_dataset("bt.db", engine="resonance", group="3f2a9c", chunks={})            # doctest: +SKIP
>>> ds = xr.open_dataset("bt.db", engine="resonance", group="3f2a9c/baseline")              # doctest: +SKIP
>>> tree = xr.open_datatree("bt.db", engine="resonance", chunks={})                          # doctest: +SKIP

As with any backend, frames stay on disk until indexed. ``chunks={}`` gives
dask arrays with the preferred chunking: whole frames grouped to about
dask's ``array.chunk-size``, or what ``frame_chunks=`` asks for (an int of
frames per chunk, a tuple, a dict or ``"auto"``); ``chunks=...`` any other.

xarray imports every installed engine's entry point, for every user of
xarray, whenever it guesses an engine. So this module imports nothing but
the standard library and ``xarray.backends``: guessing reads 16 bytes of a
file, and the reading layers (dask, zarr, our builder) are imported only
when this engine opens a beamtime.
"""

from __future__ import annotations

import os
from typing import Any

from xarray.backends import BackendEntrypoint

__all__ = ["ResonanceBackendEntrypoint"]

_SQLITE_MAGIC = b"SQLite format 3\x00"


class ResonanceBackendEntrypoint(BackendEntrypoint):
    """Open ALS RSoXS beamtimes (``NAME.db`` + ``NAME.zarr``) with xarray.

    ``group`` names a run by uid or unique prefix, optionally followed by a
    stream (``"<uid>/baseline"``; default ``primary``). ``open_datatree``
    gives the whole beamtime as ``/<uid>/<stream>`` nodes with run
    attributes on each ``/<uid>`` node. ``frame_chunks`` sets the preferred
    chunks of the frame variables (see
    :func:`intake_resonance.datasets.build.frame_chunks`).

    The database connection is closed before the Dataset is returned: the
    Dataset reads frames from the Zarr store only. The reading itself is
    :class:`~intake_resonance.datasets.engine.RunEngine`'s (over the one
    builder), imported when a beamtime is opened.
    """

    description = "ALS RSoXS beamtimes (SQLite + Zarr) as runs and streams"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "group", "frame_chunks")
    supports_groups = True

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        if not isinstance(filename_or_obj, (str, os.PathLike)):
            return False
        try:
            from ..beamtime.format import read_head  # stdlib and sqlite3 only

            if read_head(os.fspath(filename_or_obj), 0, 16) != _SQLITE_MAGIC:
                return False  # what every other file stops at: 16 bytes read
            from ..beamtime.errors import BeamtimeError
            from ..beamtime.format import Database

            try:
                with Database(os.fspath(filename_or_obj)):  # checks the beamtime tables and schema version
                    return True
            except BeamtimeError:
                return False
        except OSError:
            return False

    def open_dataset(self, filename_or_obj: Any, **kwargs: Any) -> Any:  # the parameters: open_dataset_parameters
        from ..datasets.engine import RunEngine

        return RunEngine().open_dataset(filename_or_obj, **kwargs)

    def open_groups_as_dict(self, filename_or_obj: Any, **kwargs: Any) -> Any:
        from ..datasets.engine import RunEngine

        return RunEngine().open_groups_as_dict(filename_or_obj, **kwargs)

    def open_datatree(self, filename_or_obj: Any, **kwargs: Any) -> Any:
        from ..datasets.engine import RunEngine

        return RunEngine().open_datatree(filename_or_obj, **kwargs)
