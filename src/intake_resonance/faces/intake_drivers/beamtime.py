"""``resonance_beamtime``: one beamtime ``.db`` as an intake catalog of runs, oldest first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr
from intake.catalog import Catalog
from intake.catalog.local import LocalCatalogEntry

from ..._version import __version__
from ...beamtime import records
from ...beamtime.format import Database
from ...datasets import listing
from ...datasets.entries import LazyEntries
from ...datasets.many import events_frame, open_many, stack_many
from ._fresh import FreshnessMixin
from .run import RunSource

__all__ = ["BeamtimeCatalog"]


class BeamtimeCatalog(FreshnessMixin, Catalog):
    """One beamtime ``.db`` as a catalog of runs (oldest first).

    Parameters
    ----------
    path : str
        The beamtime's ``.db`` file (its ``.zarr`` store sits beside it).
    criteria : dict or list of dict, optional
        Search criteria this catalog is narrowed to (see :meth:`search`).
    stream, chunks
        Passed to every :class:`RunSource` made from this catalog.
    ttl : float, optional
        Seconds after which reads re-read the beamtime by themselves
        (intake's rule; default 60). ``reload()`` re-reads at once.
    """

    name = "resonance_beamtime"
    version = __version__
    container = "catalog"

    def __init__(
        self,
        path: str,
        criteria: Any = None,
        stream: str = "primary",
        chunks: Any = None,
        **kwargs: Any,
    ) -> None:
        self.path = str(path)
        self._query = records.RunQuery.from_dicts(criteria)
        self.stream = stream
        self.chunks = chunks
        self._db: Database | None = None
        kwargs.setdefault("name", Path(self.path).stem)
        super().__init__(**kwargs)

    # -- loading ----------------------------------------------------------
    @property
    def db(self) -> Database:
        """The read-only database handle."""
        if self._db is None:
            self._db = Database(self.path)
        return self._db

    def _load(self) -> None:
        if self._db is not None:
            # reload() and the ttl refresh land here: a .db replaced since (rsync lands a
            # new inode) is read afresh; a deleted one raises BeamtimeNotFoundError.
            self._db.refresh()
        self._entries = LazyEntries(records.list_uids(self.db, self._query), self._make_entry)

    def _make_entry(self, uid: str) -> LocalCatalogEntry:
        meta = listing.run_entry_metadata(self.db, uid, self.stream)
        return LocalCatalogEntry(
            name=uid,
            description=f"{meta.get('plan_name', 'run')} run {uid}",
            driver=RunSource,
            direct_access="allow",
            args={"path": self.path, "uid": uid, "stream": self.stream, "chunks": self.chunks},
            metadata=meta,
            catalog=self,
        )

    # -- access -------------------------------------------------------------
    def __getitem__(self, key: Any) -> Any:
        """A run by uid, unique uid prefix (6+ characters) or integer position."""
        entries = self._get_entries()
        if not (isinstance(key, str) and key in entries):
            key = listing.run_key(self.db, key, entries.uids, self._query)
            if key not in entries:  # written after the last reload
                self.force_reload()
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        return key in self._get_entries()

    # -- search, tables, stacking --------------------------------------------
    def search(self, text: str | None = None, depth: int = 2, **criteria: Any) -> BeamtimeCatalog:
        """A narrower catalog of the same kind; chained calls narrow further.

        Parameters
        ----------
        text : str, optional
            Substring of uid, plan name, sample name, operator or metadata.
        **criteria
            ``plan_name``, ``sample``, ``exit_status``, ``operator`` (a value,
            a list of values, or None for NULL), ``since``/``until`` (datetime,
            ISO text or epoch seconds; naive times are UTC), ``metadata`` (a
            dict), and any other name as a run-metadata key. All become SQL
            parameters.
        """
        return BeamtimeCatalog(
            self.path,
            criteria=listing.narrowed(self._query, text, **criteria).as_dict_list(),
            stream=self.stream,
            chunks=self.chunks,
            name=self.name,
            ttl=self.ttl,
        )

    def to_dataframe(self) -> pd.DataFrame:
        """One row per run, oldest first.

        Columns: uid, plan_name, sample, time_start, time_stop
        (``datetime64[ns, UTC]``, NaT while a run is open), exit_status,
        num_events (committed events of all streams, an open run's too),
        stream_events and frames (of this catalog's stream: what
        ``run.to_dask()`` holds), operator. The counts are defined in
        :mod:`intake_resonance.beamtime.records.summary`.
        """
        return listing.runs_frame(self.db, self._query, self.stream)

    def stack(
        self,
        runs: list[Any] | None = None,
        dim: str = "run",
        by: str | None = None,
        stream: str | None = None,
        **options: Any,
    ) -> xr.Dataset:
        """Combine runs of this catalog into one lazy Dataset, read in bulk (see :func:`stack_many`).

        ``runs`` are uids, prefixes or positions (default: every run here);
        ``options`` (``align=``, ``tolerance=``, ``errors=``) go to :func:`stack_many`.
        """
        uids = self._uids(runs)
        return stack_many(self.db, uids, stream or self.stream, dim=dim, by=by, chunks=self.chunks, **options)

    def events(
        self, stream: str | None = None, fields: list[str] | None = None, *, runs: list[Any] | None = None, **options: Any
    ) -> Any:
        """The scalar events of the runs here as one table, read in bulk (see :func:`events_frame`).

        ``runs`` are uids, prefixes or positions (default: every run here);
        ``options`` (``engine="arrow"``, ``errors="skip"``) go to :func:`events_frame`.
        """
        return events_frame(self.db, self._uids(runs), stream or self.stream, fields=fields, **options)

    def _uids(self, runs: list[Any] | None) -> list[str]:
        return listing.run_keys(self.db, runs, self._get_entries().uids, self._query)

    def _datasets(self, runs: list[Any] | None, stream: str | None) -> list[xr.Dataset]:
        return open_many(self.db, self._uids(runs), stream or self.stream, chunks=self.chunks)

    def close(self) -> None:
        """Close the database connection (reopened on the next read)."""
        if self._db is not None:
            self._db.close()

    def to_pyhyper(self, runs: list[Any] | None = None, stream: str | None = None, **options: Any) -> xr.DataArray:
        """Frames of runs here in PyHyperScattering's layout (see :func:`intake_resonance.analysis.pyhyper.to_pyhyper`).

        ``runs`` are uids, prefixes or positions (default: every run here, so
        narrow with :meth:`search` first); ``options`` (``by=``, ``dims=``,
        ``geometry=``, ``stacked=``, ``field=``) go to ``to_pyhyper``.
        """
        from ...analysis.pyhyper import to_pyhyper  # optional face: imported only when used

        return to_pyhyper(self._datasets(runs, stream), **options)
