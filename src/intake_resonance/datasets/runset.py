"""The one catalog model under every face: the runs of a beamtime that match a query.

A :class:`RunSet` owns what a catalog of runs means: its listing (oldest
first), its keys (the exact uid first, then a unique prefix, then an integer
position), its search vocabulary (:class:`~intake_resonance.beamtime.records.RunQuery`),
its runs table, and its many-run reads (Datasets, a stack, one events
table). The intake v1 and intake 2 catalogs, tiled's runs container and the
command line are translations of their own calls into these methods.

A live beamtime
---------------
Every call sees the newest committed state of the beamtime: the listing is
kept per :meth:`~intake_resonance.beamtime.format.Database.state` (two
``stat`` calls and 4 bytes read per call), so ``len``, iteration, ``[-1]``,
keys, the runs table, ``search``, ``stack`` and ``events`` of one object
always describe the same runs, and a run written a moment ago is in all of
them at once. There is nothing to reload; a ``.db`` replaced under its name
is read afresh, a deleted one is a
:class:`~intake_resonance.beamtime.errors.BeamtimeNotFoundError`.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..beamtime import records
from ..beamtime.format import Database
from ..beamtime.records import RunQuery
from .many import events_frame, open_many, stack_many
from .open import open_run_dataset
from .runs_table import runs_frame

__all__ = ["LiveEntries", "RunSet"]


class RunSet:
    """The runs of one beamtime matching a query, oldest first, as of the newest commit.

    Parameters
    ----------
    beamtime : Database or path
        The beamtime's ``.db``; a path is opened read-only here (the
        connection closes with :meth:`close` or when the object is collected).
    query : RunQuery, optional
        What the set is narrowed to (default: every run).
    stream : str
        The stream the runs table counts and Datasets open by default.
    chunks : optional
        Frame chunks of every Dataset made here (as
        :func:`~intake_resonance.datasets.open.open_run_dataset` takes them).
    """

    def __init__(
        self,
        beamtime: Database | str | os.PathLike[str],
        query: RunQuery | None = None,
        *,
        stream: str = "primary",
        chunks: Any = None,
    ) -> None:
        self.db = beamtime if isinstance(beamtime, Database) else Database(os.fspath(beamtime))
        self.query = query or RunQuery()
        self.stream = stream
        self.chunks = chunks
        self._listed: tuple[tuple[Any, ...], list[str], frozenset[str]] | None = None

    @property
    def path(self) -> Path:
        """Path: the ``.db`` as given."""
        return self.db.path

    @property
    def source(self) -> str:
        """str: the ``.db``'s absolute, resolved path (what Datasets hold as ``encoding["source"]``)."""
        return str(self.db.path.resolve())

    def __repr__(self) -> str:
        narrowed = f" where {self.query.as_dict_list()}" if self.query.criteria else ""
        return f"<RunSet {str(self.path)!r}{narrowed}, stream {self.stream!r}>"

    # -- the listing ----------------------------------------------------------
    def _listing(self) -> tuple[list[str], frozenset[str]]:
        state = self.db.state()  # taken first: a commit during the query makes the next call list again
        listed = self._listed
        if listed is None or listed[0] != state:
            if listed is not None:
                self.db.refresh()  # a file replaced under its name is read afresh; a deleted one raises
            uids = records.list_uids(self.db, self.query)
            listed = self._listed = (state, uids, frozenset(uids))
        return listed[1], listed[2]

    def uids(self) -> list[str]:
        """The uids, oldest first (a list the caller must not change)."""
        return self._listing()[0]

    def __len__(self) -> int:
        return len(self.uids())

    def __iter__(self) -> Iterator[str]:
        return iter(self.uids())

    def __contains__(self, uid: object) -> bool:
        return uid in self._listing()[1]

    # -- keys -------------------------------------------------------------------
    def key(self, key: Any) -> str:
        """The uid a key names: a listed uid, then a unique uid prefix (6+ characters), then an integer position.

        Raises
        ------
        TypeError
            A ``bool`` key (almost surely a mistake), or a key neither text nor an integer.
        IndexError
            A position out of range (the message names the beamtime).
        RunNotFoundError
            An unknown, too short or ambiguous uid or prefix (a ``KeyError``).
        """
        listed, known = self._listing()
        if isinstance(key, str):
            # The exact uid wins; a prefix is resolved among the runs this set selects.
            return key if key in known else records.resolve_uid(self.db, key, self.query)
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, numbers.Integral):
            raise TypeError(f"runs are indexed by uid, uid prefix or integer position, not {type(key).__name__}")
        if not -len(listed) <= int(key) < len(listed):
            raise IndexError(f"run position {int(key)} out of range for {len(listed)} runs in {self.path}")
        return listed[int(key)]

    def keys(self, keys: Iterable[Any] | None = None) -> list[str]:
        """:meth:`key` of each key, in order; ``None`` means every run of the set."""
        return list(self.uids()) if keys is None else [self.key(k) for k in keys]

    # -- search -------------------------------------------------------------------
    def narrow(self, text: str | None = None, **criteria: Any) -> RunSet:
        """A set narrowed by more criteria (``text`` is the free-text criterion); chained calls narrow further.

        The criteria are :meth:`RunQuery.narrow`'s: ``plan_name`` (``plan``),
        ``sample`` (``sample_name``), ``exit_status`` (``status``),
        ``operator``, ``since``, ``until``, ``text``, ``metadata={...}`` and
        any key of some run's metadata. A name that is none of these is a
        :class:`~intake_resonance.beamtime.errors.SearchCriterionError` naming
        the accepted names, raised here, never an empty answer.
        """
        if text is not None:
            criteria["text"] = text
        found = RunSet(self.db, self.query.narrow(**criteria), stream=self.stream, chunks=self.chunks)
        found.uids()  # checks the criteria's names against the beamtime now
        return found

    # -- what a run and the set look like ----------------------------------------------
    def entry_metadata(self, uid: str) -> dict[str, Any]:
        """A catalog entry's metadata: ISO times and counts as every face shows them (empty if the run has gone)."""
        run = records.get_run(self.db, uid)
        return {} if run is None else records.run_summary(self.db, run, self.stream)

    def table(self, stream: str | None = None) -> pd.DataFrame:
        """One row per run of the set, oldest first (:func:`~intake_resonance.datasets.runs_table.build_runs_frame`)."""
        self._listing()  # the same state as the listing: a replaced file is read afresh first
        return runs_frame(self.db, self.query, stream or self.stream)

    # -- reading ------------------------------------------------------------------------
    def open(self, key: Any, stream: str | None = None, **options: Any) -> xr.Dataset:
        """One run's Dataset (:func:`~intake_resonance.datasets.open.open_run_dataset`); ``options``: ``chunks``, ``drop_variables``."""
        options.setdefault("chunks", self.chunks)
        return open_run_dataset(self.db, self.key(key), stream or self.stream, **options)

    def datasets(self, runs: Iterable[Any] | None = None, stream: str | None = None, **options: Any) -> list[xr.Dataset]:
        """Runs of the set as Datasets, read in bulk (:func:`~intake_resonance.datasets.many.open_many`)."""
        options.setdefault("chunks", self.chunks)
        return open_many(self.db, self.keys(runs), stream or self.stream, **options)

    def stack(
        self, runs: Iterable[Any] | None = None, dim: str = "run", by: str | None = None, stream: str | None = None, **options: Any
    ) -> xr.Dataset:
        """Runs of the set in one lazy Dataset, read in bulk (:func:`~intake_resonance.datasets.many.stack_many`).

        ``runs`` are uids, prefixes or positions (default: every run of the
        set); ``options``: ``align=``, ``tolerance=``, ``errors=``.
        """
        options.setdefault("chunks", self.chunks)
        return stack_many(self.db, self.keys(runs), stream or self.stream, dim=dim, by=by, **options)

    def events(
        self, stream: str | None = None, fields: Sequence[str] | None = None, *, runs: Iterable[Any] | None = None, **options: Any
    ) -> Any:
        """The scalar events of runs of the set as one table (:func:`~intake_resonance.datasets.many.events_frame`).

        ``options``: ``engine="arrow"``, ``errors="skip"``.
        """
        return events_frame(self.db, self.keys(runs), stream or self.stream, fields=fields, **options)

    def close(self) -> None:
        """Close the database connection (the next call opens it again)."""
        self.db.close()


class LiveEntries[E](MutableMapping[str, E]):
    """A catalog's entries as a live mapping: the keys of a listing, each entry made the first time it is asked for.

    Both intake faces keep their entries in one of these, so a catalog lists
    what its :class:`RunSet` (or folder) holds now, and listing 10 000 runs
    builds a list of uids, not 10 000 entries. Entries set by hand (intake
    2's ``Catalog.add_entry``, intake v1's ``cat[name] = entry``) are kept
    as given and listed after the listing's own.

    Parameters
    ----------
    listing : callable
        ``listing() -> (keys in order, container of the same keys)``, called
        at every access.
    make : callable
        ``make(key) -> entry``.
    name : str
        What :func:`repr` shows (and so intake's tokens of a catalog hold).
    """

    def __init__(
        self, listing: Callable[[], tuple[Sequence[str], Any]], make: Callable[[str], E], name: str = "entries"
    ) -> None:
        self._listing = listing
        self._make = make
        self._name = name
        self._made: dict[str, E] = {}
        self._added: dict[str, E] = {}

    def _keys(self) -> tuple[Sequence[str], Any]:
        return self._listing()

    def made(self, key: str) -> E | None:
        """The entry of ``key`` if it was built (or set) already, else None; nothing is built."""
        return self._added.get(key, self._made.get(key))

    def __getitem__(self, key: str) -> E:
        if key in self._added:
            return self._added[key]
        if key not in self._made:
            if key not in self._keys()[1]:
                raise KeyError(key)
            self._made[key] = self._make(key)
        return self._made[key]

    def __setitem__(self, key: str, entry: E) -> None:
        self._added[key] = entry

    def __delitem__(self, key: str) -> None:
        if key in self._added:
            del self._added[key]
            return
        if key in self._keys()[1]:
            raise TypeError(f"{key!r} is listed from the beamtime and cannot be removed; narrow with search() instead")
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return key in self._added or key in self._keys()[1]

    def __iter__(self) -> Iterator[str]:
        listed, known = self._keys()
        yield from listed
        yield from (k for k in self._added if k not in known)

    def __len__(self) -> int:
        listed, known = self._keys()
        return len(listed) + sum(k not in known for k in self._added)

    def copy(self) -> dict[str, E]:
        """A plain dict of every entry (each is built)."""
        return dict(self.items())

    def __repr__(self) -> str:
        return f"<{self._name}>"
