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
from pathlib import Path
from typing import Any

from ..beamtime.errors import BeamtimeError
from ..beamtime.format import Database
from ..datasets.engine import RunEngine, split_group

__all__ = ["ResonanceBackendEntrypoint", "split_group"]


class ResonanceBackendEntrypoint(RunEngine):
    """Open ALS RSoXS beamtimes (``NAME.db`` + ``NAME.zarr``) with xarray.

    ``group`` names a run by uid or unique prefix, optionally followed by a
    stream (``"<uid>/baseline"``; default ``primary``). ``open_datatree``
    gives the whole beamtime as ``/<uid>/<stream>`` nodes with run
    attributes on each ``/<uid>`` node. ``frame_chunks`` sets the preferred
    chunks of the frame variables (see
    :func:`intake_resonance.datasets.build.frame_chunks`).

    The database connection is closed before the Dataset is returned: the
    Dataset reads frames from the Zarr store only. The reading itself is
    :class:`~intake_resonance.datasets.engine.RunEngine`'s; this class adds
    what xarray asks of an installed engine.
    """

    description = "ALS RSoXS beamtimes (SQLite + Zarr) as runs and streams"

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        if not isinstance(filename_or_obj, (str, os.PathLike)):
            return False
        path = Path(filename_or_obj)
        try:
            with open(path, "rb") as fh:
                if fh.read(16) != b"SQLite format 3\x00":
                    return False
            with Database(path):  # checks the beamtime tables and schema version
                return True
        except (OSError, BeamtimeError):
            return False
