"""``resonance_beamtime``: one beamtime ``.db`` as an intake catalog of runs, oldest first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr
from intake.catalog import Catalog
from intake.catalog.local import LocalCatalogEntry

from ..._version import __version__
from ...beamtime.records import RunQuery
from ...datasets.runset import LiveEntries, RunSet
from .run import RunSource

__all__ = ["BeamtimeCatalog"]


class BeamtimeCatalog(Catalog):
    """One beamtime ``.db`` as a catalog of runs (oldest first), a translation of :class:`~intake_resonance.datasets.runset.RunSet`.

    Every call sees the newest committed state of the beamtime, so ``len``,
    iteration, ``cat[-1]``, ``to_dataframe()``, ``search()``, ``stack()``
    and ``events()`` always describe the same runs (nothing to reload).

    Parameters
    ----------
    path : str
        The beamtime's ``.db`` file (its ``.zarr`` store sits beside it).
    criteria : dict or list of dict, optional
        Search criteria this catalog is narrowed to (see :meth:`search`).
    stream, chunks
        Passed to every :class:`RunSource` made from this catalog.
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
        self.stream = stream
        self.chunks = chunks
        self.runs = RunSet(self.path, RunQuery.from_dicts(criteria), stream=stream, chunks=chunks)
        kwargs.setdefault("name", Path(self.path).stem)
        super().__init__(**kwargs)

    # intake documents both hooks for subclasses backed by a database: the
    # entries container (a live mapping over the RunSet) and _load.
    def _make_entries_container(self) -> LiveEntries[LocalCatalogEntry]:
        return LiveEntries(lambda: (self.runs.uids(), self.runs), self._make_entry, name=repr(self.runs))

    def _load(self) -> None:
        # reload() and intake's ttl land here: the listing is live already; a .db
        # replaced since (rsync lands a new inode) is read afresh, a deleted one raises.
        self.runs.db.refresh()

    def reload(self) -> None:
        """Notice at once a ``.db`` replaced (read afresh) or deleted (``BeamtimeNotFoundError``); the listing is live anyway."""
        self.force_reload()

    def _make_entry(self, uid: str) -> LocalCatalogEntry:
        meta = self.runs.entry_metadata(uid)
        return LocalCatalogEntry(
            name=uid,
            description=f"{meta.get('plan_name', 'run')} run {uid}",
            driver=RunSource,
            direct_access="allow",
            # absolute: a catalog saved from this one opens from anywhere
            args={"path": self.runs.source, "uid": uid, "stream": self.stream, "chunks": self.chunks},
            metadata=meta,
            catalog=self,
        )

    @property
    def db(self) -> Any:
        """The read-only database handle."""
        return self.runs.db

    # -- access -------------------------------------------------------------
    def __getitem__(self, key: Any) -> Any:
        """A run by uid, unique uid prefix (6+ characters) or integer position."""
        return super().__getitem__(self.runs.key(key))

    # -- search, tables, stacking --------------------------------------------
    def search(self, text: str | None = None, depth: int = 2, **criteria: Any) -> BeamtimeCatalog:
        """A narrower catalog of the same kind; chained calls narrow further.

        Parameters
        ----------
        text : str, optional
            Substring of uid, plan name, sample name, operator or metadata.
        **criteria
            ``plan_name`` (or ``plan``), ``sample`` (or ``sample_name``),
            ``exit_status`` (or ``status``), ``operator`` (a value, a list of
            values, or None for NULL), ``since``/``until`` (datetime, ISO
            text or epoch seconds; naive times are UTC), ``metadata`` (a
            dict), and any key of some run's metadata; any other name is a
            ``SearchCriterionError``. All become SQL parameters.
        """
        found = self.runs.narrow(text, **criteria)  # a misspelt name raises here
        # Made from its arguments, so intake can serialise it (its YAML and pickles hold them).
        criteria_list = found.query.as_dict_list()
        return type(self)(self.path, criteria_list, stream=self.stream, chunks=self.chunks, name=self.name, ttl=self.ttl)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per run, oldest first.

        Columns: uid, plan_name, sample, time_start, time_stop
        (``datetime64[ns, UTC]``, NaT while a run is open), exit_status,
        num_events (committed events of all streams, an open run's too),
        stream_events and frames (of this catalog's stream: what
        ``run.to_dask()`` holds), operator. The counts are defined in
        :mod:`intake_resonance.beamtime.records.summary`.
        """
        return self.runs.table()

    def stack(
        self, runs: list[Any] | None = None, dim: str = "run", by: str | None = None, stream: str | None = None, **options: Any
    ) -> xr.Dataset:
        """Combine runs of this catalog into one lazy Dataset, read in bulk (see :func:`stack_many`).

        ``runs`` are uids, prefixes or positions (default: every run here);
        ``options`` (``align=``, ``tolerance=``, ``errors=``) go to :func:`stack_many`.
        """
        return self.runs.stack(runs, dim=dim, by=by, stream=stream, **options)

    def events(
        self, stream: str | None = None, fields: list[str] | None = None, *, runs: list[Any] | None = None, **options: Any
    ) -> Any:
        """The scalar events of the runs here as one table, read in bulk (see :func:`events_frame`).

        ``runs`` are uids, prefixes or positions (default: every run here);
        ``options`` (``engine="arrow"``, ``errors="skip"``) go to :func:`events_frame`.
        """
        return self.runs.events(stream, fields, runs=runs, **options)

    def close(self) -> None:
        """Close the database connection (reopened on the next read)."""
        self.runs.close()

    def to_pyhyper(self, runs: list[Any] | None = None, stream: str | None = None, **options: Any) -> xr.DataArray:
        """Frames of runs here in PyHyperScattering's layout (see :func:`intake_resonance.analysis.pyhyper.to_pyhyper`).

        ``runs`` are uids, prefixes or positions (default: every run here, so
        narrow with :meth:`search` first); ``options`` (``by=``, ``dims=``,
        ``geometry=``, ``stacked=``, ``field=``) go to ``to_pyhyper``.
        """
        from ...analysis.pyhyper import to_pyhyper  # optional face: imported only when used

        return to_pyhyper(self.runs.datasets(runs, stream), **options)
