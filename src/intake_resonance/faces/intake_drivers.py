"""Intake drivers: a beamtime is a catalog of runs, a folder a catalog of beamtimes.

Registered in the ``intake.drivers`` entry-point group, so intake offers
``intake.open_resonance_beamtime``, ``intake.open_resonance_beamtimes`` and
``intake.open_resonance_run``, and YAML catalogs can name the drivers.
The classes are thin: the work lives in :mod:`.records`, :mod:`.dataset`
and :mod:`.stacking`.

Catalog behaviour
-----------------
- Runs are listed oldest first; ``cat[-1]`` is the newest. A run is found
  by uid, a unique uid prefix of 6+ characters, or an integer position.
- Entries are made only when asked for: listing 10 000 runs builds a list
  of uids, not 10 000 entries.
- ``reload()`` re-reads at once; reads between reloads re-read by
  themselves once ``ttl`` seconds have passed (intake's rule).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr
from intake.catalog import Catalog
from intake.catalog.local import LocalCatalogEntry
from intake.source.base import DataSource, Schema

from .._version import __version__
from ..beamtime import records
from ..beamtime.errors import BeamtimeNotFoundError, RunNotFoundError
from ..beamtime.format import Database
from ..datasets.open import open_database, open_run_dataset, open_run_datasets, open_run_tree, run_layout, stream_names
from ..datasets.stacking import stack_runs

__all__ = ["RunSource", "BeamtimeCatalog", "BeamtimesCatalog"]


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

    def to_dask(self) -> xr.Dataset:
        """The run as a Dataset with dask-backed, unread frames."""
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
        from ..analysis.pyhyper import to_pyhyper  # optional face: imported only when used

        return to_pyhyper(self.to_dask(), **options)


class _RunEntries(Mapping):
    """Lazy mapping uid -> catalog entry; an entry is made on first access."""

    def __init__(self, catalog: BeamtimeCatalog, uids: list[str]) -> None:
        self._catalog = catalog
        self._uids = uids
        self._index = {u: i for i, u in enumerate(uids)}
        self._made: dict[str, LocalCatalogEntry] = {}

    def __getitem__(self, uid: str) -> LocalCatalogEntry:
        if uid not in self._index:
            raise KeyError(uid)
        entry = self._made.get(uid)
        if entry is None:
            entry = self._made[uid] = self._catalog._make_entry(uid)
        return entry

    def __iter__(self) -> Iterator[str]:
        return iter(self._uids)

    def __len__(self) -> int:
        return len(self._uids)

    def __contains__(self, uid: object) -> bool:
        return uid in self._index


class _FreshnessMixin:
    """Explicit ``reload()`` always re-reads; implicit reloads follow ``ttl``."""

    ttl: float | None
    updated: float
    pmode: str
    _entries: Any
    if TYPE_CHECKING:  # provided by intake's Catalog, which follows in the MRO

        def force_reload(self) -> None: ...

    def reload(self) -> None:  # noqa: D102 - documented on the classes
        self.force_reload()

    def _reload_if_stale(self) -> None:
        if self.ttl is not None and time.time() - self.updated > self.ttl:
            self.force_reload()

    def _get_entries(self) -> Any:
        self._reload_if_stale()
        return self._entries

    def _get_entry(self, name: str) -> Any:
        self._reload_if_stale()
        entry = self._entries[name]
        entry._catalog = self
        entry._pmode = self.pmode
        return entry()


def _utc_times(seconds: list[float | None]) -> pd.Series:
    """Epoch seconds as ``datetime64[ns, UTC]`` (NaT for NULL), rounded as the Datasets' ``time`` is."""
    ns = np.round(np.array([np.nan if t is None else t for t in seconds], dtype=np.float64) * 1e9)
    return pd.Series(ns, dtype="float64").astype("Int64").astype("datetime64[ns]").dt.tz_localize("UTC")


class BeamtimeCatalog(_FreshnessMixin, Catalog):
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
        self._entries = _RunEntries(self, records.list_uids(self.db, self._query))

    def _make_entry(self, uid: str) -> LocalCatalogEntry:
        run = records.get_run(self.db, uid)
        # ISO times and counts as every face shows them (records.summary).
        meta = {} if run is None else records.run_summary(self.db, run, self.stream)
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
        if isinstance(key, (bool, np.bool_)):
            raise TypeError("runs are indexed by uid, uid prefix or integer position, not bool")
        entries = self._get_entries()
        if isinstance(key, (int, np.integer)):
            uids = entries._uids
            if not -len(uids) <= int(key) < len(uids):
                raise IndexError(f"run position {int(key)} out of range for {len(uids)} runs in {self.path}")
            key = uids[int(key)]
        elif isinstance(key, str) and key not in entries:
            key = records.resolve_uid(self.db, key, self._query)
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
        if text is not None:
            criteria["text"] = text
        query = self._query.narrow(**criteria)
        return BeamtimeCatalog(
            self.path,
            criteria=query.as_dict_list(),
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
        cols = records.runs_table(self.db, self._query)
        counts = records.counts_table(self.db, self._query)
        none = records.RunCounts()
        per_run = [counts.get(uid, none) for uid in cols["uid"]]
        cols["num_events"] = [c.num_events for c in per_run]
        df = pd.DataFrame(cols)
        for name in ("time_start", "time_stop"):
            df[name] = _utc_times(cols[name])
        df["num_events"] = df["num_events"].astype("int64")
        at = list(df.columns).index("num_events")
        df.insert(at + 1, "stream_events", np.array([c.stream_events(self.stream) for c in per_run], np.int64))
        df.insert(at + 2, "frames", np.array([c.stream_frames(self.stream) for c in per_run], np.int64))
        return df

    def stack(
        self,
        runs: list[Any] | None = None,
        dim: str = "run",
        by: str | None = None,
        stream: str | None = None,
        **options: Any,
    ) -> xr.Dataset:
        """Combine runs of this catalog into one lazy Dataset (see :func:`stack_runs`).

        ``runs`` are uids, prefixes or positions (default: every run here);
        ``options`` (``align=``, ``tolerance=``) go to :func:`stack_runs`.
        """
        keys = list(self) if runs is None else runs
        sets = open_run_datasets(self.db, [self[k].uid for k in keys], stream or self.stream, chunks=self.chunks)
        return stack_runs(sets, dim=dim, by=by, **options)

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
        from ..analysis.pyhyper import to_pyhyper  # optional face: imported only when used

        keys = list(self) if runs is None else runs
        sets = open_run_datasets(self.db, [self[k].uid for k in keys], stream or self.stream, chunks=self.chunks)
        return to_pyhyper(sets, **options)


class BeamtimesCatalog(_FreshnessMixin, Catalog):
    """A folder of beamtimes as a catalog of :class:`BeamtimeCatalog`.

    Entries are the ``*.db`` files directly in the folder, named by file
    stem (``data/beamtime.db`` -> ``beamtime``) and sorted. New files appear
    on ``reload()`` (or after ``ttl``).

    Parameters
    ----------
    path : str
        The folder.
    stream, chunks
        Passed on to each beamtime catalog.
    """

    name = "resonance_beamtimes"
    version = __version__
    container = "catalog"

    def __init__(self, path: str, stream: str = "primary", chunks: Any = None, **kwargs: Any) -> None:
        self.path = str(path)
        self.stream = stream
        self.chunks = chunks
        kwargs.setdefault("name", Path(self.path).name)
        super().__init__(**kwargs)

    def _load(self) -> None:
        if not self.path.strip():  # a YAML template opened without a folder: fail on use (_get_entries), not on access
            self._entries = {}
            return
        folder = Path(self.path).expanduser()
        if not folder.is_dir():
            raise BeamtimeNotFoundError("folder of beamtimes does not exist", folder)
        entries = {}
        for db in sorted(folder.glob("*.db")):
            entries[db.stem] = LocalCatalogEntry(
                name=db.stem,
                description=f"beamtime {db.name}",
                driver=BeamtimeCatalog,
                direct_access="allow",
                args={"path": str(db), "stream": self.stream, "chunks": self.chunks},
                catalog=self,
            )
        self._entries = entries

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str) and key not in self._get_entries():
            self.force_reload()  # a file that appeared since the last read
            if key not in self._entries:
                raise RunNotFoundError(
                    f"no beamtime named {key!r} (have: {', '.join(self._entries) or 'none'})", self.path
                )
        return super().__getitem__(key)

    def _get_entries(self) -> Any:
        if not self.path.strip():
            raise BeamtimeNotFoundError(
                "no folder of beamtimes given: pass folder=... or set RESONANCE_DATA", "(empty path)"
            )
        return super()._get_entries()
