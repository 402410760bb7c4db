"""``resonance_run``: one run (one stream) as an intake source of an :class:`xarray.Dataset`."""

from __future__ import annotations

import weakref
from typing import Any

import xarray as xr
from intake.source.base import DataSource, Schema

from ..._version import __version__
from ...beamtime import records
from ...datasets.open import open_database, open_run_dataset, open_run_tree, run_layout, stream_names

__all__ = ["RunSource"]


class RunSource(DataSource):
    """One run (one stream) of a beamtime as an :class:`xarray.Dataset`.

    Parameters
    ----------
    path : str
        The beamtime's ``.db``.
    uid : str
        Run uid or unique prefix (6+ characters).
    stream : str
        Stream to open (default ``"primary"``).
    chunks : int, tuple, dict or "auto", optional
        Dask chunks of the image variables (default: whole frames grouped to
        about dask's ``array.chunk-size``).
    metadata : dict, optional
        Extra metadata; the run's attributes are added on ``discover()``.
    """

    container = "xarray"
    name = "resonance_run"
    version = __version__
    partition_access = False

    def __init__(
        self,
        path: str,
        uid: str,
        stream: str = "primary",
        chunks: Any = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.path = str(path)
        self.uid = uid
        self.stream = stream
        self.chunks = chunks
        # Only a weak reference: a catalog keeps its sources, and a source
        # must not keep a long run's Dataset alive after the user drops it.
        self._ds_ref: weakref.ref[xr.Dataset] | None = None
        super().__init__(metadata=metadata, **kwargs)

    def _open(self) -> xr.Dataset:
        ds = None if self._ds_ref is None else self._ds_ref()
        if ds is None:
            ds = open_run_dataset(self.path, self.uid, self.stream, chunks=self.chunks)
            self._ds_ref = weakref.ref(ds)
        return ds

    def _get_schema(self) -> Schema:
        # From the descriptors, the first events and the seq_num index (dataset.run_layout):
        # discover() never reads the event table nor builds the Dataset.
        with open_database(self.path) as db:
            layout = run_layout(db, self.uid, self.stream)
        return Schema(
            datashape=None,
            dtype=None,
            shape=None,
            npartitions=None,
            extra_metadata={
                **layout["attrs"],
                "dims": layout["dims"],
                "data_vars": layout["data_vars"],
                "coords": layout["coords"],
            },
        )

    _UNSET: Any = object()

    def to_dask(self, chunks: Any = _UNSET) -> xr.Dataset:
        """The run as a Dataset with dask-backed, unread frames.

        Parameters
        ----------
        chunks : int, tuple, dict or "auto", optional
            Chunks of the frame variables for this call (as the engine's and
            :func:`~intake_resonance.open_run_dataset`'s ``chunks=``); default
            the source's own ``chunks``.
        """
        if chunks is not self._UNSET and chunks != self.chunks:
            ds = open_run_dataset(self.path, self.uid, self.stream, chunks=chunks)
        else:
            ds = self._open()
        self._load_metadata()
        return ds

    def read(self) -> xr.Dataset:
        """The run as a Dataset with every variable loaded into memory (a new Dataset; ``to_dask()`` stays lazy)."""
        return self.to_dask().compute()

    def streams(self) -> list[str]:
        """Names of this run's streams."""
        with open_database(self.path) as db:
            return stream_names(db, records.resolve_uid(db, self.uid))

    def to_datatree(self) -> xr.DataTree:
        """Every stream of the run as a :class:`xarray.DataTree` (``/<stream>`` nodes)."""
        return open_run_tree(self.path, self.uid, chunks=self.chunks)

    def _close(self) -> None:
        self._ds_ref = None

    def to_pyhyper(self, **options: Any) -> xr.DataArray:
        """This run's frames in PyHyperScattering's layout (see :func:`intake_resonance.analysis.pyhyper.to_pyhyper`)."""
        from ...analysis.pyhyper import to_pyhyper  # optional face: imported only when used

        return to_pyhyper(self.to_dask(), **options)
