"""The runs of one beamtime as an intake 2 ``Catalog`` of run readers, over :class:`~intake_resonance.datasets.runset.RunSet`."""

from __future__ import annotations

import copy
import os
from typing import TYPE_CHECKING, Any

from intake.readers.entry import Catalog, ReaderDescription

from .datatypes import Beamtime, check_local
from .runs import RunReader

if TYPE_CHECKING:  # importing intake imports this module: the heavy layers load on first use
    import pandas as pd
    import xarray as xr

    from ...datasets.runset import RunSet

__all__ = ["RunCatalog"]


def _kept(name: str, doc: str) -> Any:
    """A property kept in ``__dict__`` under ``name`` (so intake's token and ``to_dict`` do not walk it)."""

    def get(self: Any) -> Any:
        return self.__dict__[name]

    def put(self: Any, value: Any) -> None:
        self.__dict__[name] = value

    return property(get, put, doc=doc)


class RunCatalog(Catalog):
    """The runs of one beamtime (oldest first) as intake 2 run readers.

    Made by :class:`BeamtimeReader` (or :meth:`from_beamtime`). Each entry
    is a :class:`RunReader` description named by the run's uid; ``cat[uid]``
    gives the reader, ``cat[uid].read()`` the Dataset. Beyond intake's
    Catalog: ``cat[-1]`` (positions), ``cat["3f2a9c"]`` (unique uid
    prefixes), :meth:`search` with our criteria, answered by SQL, and, as
    intake v1's beamtime catalog, ``to_dataframe()``, ``stack()`` and
    ``events()``.

    Every call sees the newest committed state of the beamtime (the entries
    and aliases are live mappings over a :class:`RunSet`), so ``len``,
    iteration, keys, the runs table and the many-run reads always describe
    the same runs. Persisting it (``to_yaml_file``) writes every run's
    description with the beamtime's absolute path, which intake reads back
    as a plain Catalog.
    """

    # entries and aliases are properties, so intake's token (made from the public
    # attributes in __dict__, its documented convention) is that of ``listing``.
    listing: dict[str, Any]
    data_token: str

    @property
    def runs(self) -> RunSet:
        """The :class:`~intake_resonance.datasets.runset.RunSet` this catalog translates."""
        runs: RunSet = self.__dict__["_runs"]
        return runs

    entries = _kept("_entries", "The run readers' descriptions by uid (a live mapping), then any added by hand.")
    aliases = _kept("_aliases", "Every listed uid (to itself), then any alias added by hand.")

    @classmethod
    def from_beamtime(
        cls, beamtime: Beamtime | str | os.PathLike[str], criteria: Any = None, stream: str = "primary", chunks: Any = None
    ) -> RunCatalog:
        """The runs of ``beamtime`` matching ``criteria``.

        Parameters
        ----------
        beamtime : Beamtime or path
        criteria : dict or list of dict, optional
            As :meth:`search` takes them.
        stream, chunks
            Given to every run reader.
        """
        from ...beamtime.records import RunQuery
        from ...datasets.runset import RunSet

        data = beamtime if isinstance(beamtime, Beamtime) else Beamtime(os.fspath(beamtime))
        return cls._of(data, RunSet(check_local(data), RunQuery.from_dicts(criteria), stream=stream, chunks=chunks))

    @classmethod
    def _of(cls, data: Beamtime, runs: RunSet) -> RunCatalog:
        from ...datasets.runset import LiveEntries

        runs.uids()  # lists now: a broken file or a misspelt criterion fails here
        data = Beamtime(runs.source, metadata=data.metadata)  # absolute: a saved catalog opens from anywhere
        desc = data.to_entry()
        cat = cls(data={desc.token: desc}, metadata={"beamtime": runs.source, "criteria": runs.query.as_dict_list(), "stream": runs.stream})
        cat.__dict__["_runs"], cat.data_token = runs, desc.token
        cat.listing = {"beamtime": runs.source, "criteria": runs.query.key, "stream": runs.stream, "chunks": repr(runs.chunks)}
        cat.entries = LiveEntries(lambda: (runs.uids(), runs), cat._make_entry, name=repr(runs))
        cat.aliases = LiveEntries(lambda: (runs.uids(), runs), str, name=f"aliases of {runs!r}")
        return cat

    def _make_entry(self, uid: str) -> ReaderDescription:
        entry = ReaderDescription(
            reader=RunReader.qname(),
            kwargs={"data": f"{{data({self.data_token})}}", "uid": uid, "stream": self.runs.stream, "chunks": self.runs.chunks},
            output_instance=RunReader.output_instance,
            metadata=self.runs.entry_metadata(uid),
        )
        return entry

    # -- access ---------------------------------------------------------------
    def __getitem__(self, item: Any) -> Any:
        """A run reader by uid, unique uid prefix (6+ characters) or integer position."""
        if not (isinstance(item, str) and (item in self.aliases or item in self.data)):
            item = self.runs.key(item)  # RunNotFoundError is a KeyError
        return super().__getitem__(item)

    def search(self, text: Any = None, **criteria: Any) -> Catalog:
        """A narrower catalog of the same kind, listed by one SQL query; chained calls narrow further.

        Parameters
        ----------
        text : str or intake search expression, optional
            A string: substring of uid, plan name, sample name, operator or
            metadata (in SQL). An ``intake.readers.search`` expression is
            applied by intake in Python to every entry (each is built).
        **criteria
            ``plan_name`` (or ``plan``), ``sample`` (or ``sample_name``),
            ``exit_status`` (or ``status``), ``operator`` (a value, a list
            of values, or None for NULL), ``since``/``until`` (datetime, ISO
            text or epoch seconds; naive times are UTC), ``metadata`` (a
            dict), and any key of some run's metadata; any other name is a
            ``SearchCriterionError``.
        """
        if text is not None and not isinstance(text, str):
            if not callable(getattr(text, "filter", None)):
                from ...beamtime.errors import SearchCriterionError

                raise SearchCriterionError(f"search criterion 'text' takes a string or an intake search expression, not {text!r}")
            if criteria:
                raise TypeError("give an intake search expression or criteria, not both")
            # intake's expression search, through its public Catalog API: each run's entry is built and filtered.
            found = Catalog(metadata=dict(self.metadata))
            found.add_entry(self.data[self.data_token])
            for uid in self.runs.uids():
                if text.filter(self.entries[uid]):
                    # add_entry keys it by uid but aliases no name equal to its key: alias it so it lists.
                    found.aliases[uid] = found.add_entry(copy.copy(self.entries[uid]), name=uid)
            return found
        found = type(self)._of(Beamtime(self.runs.source), self.runs.narrow(text, **criteria))
        found.user_parameters = self.user_parameters.copy()
        return found

    def reload(self) -> RunCatalog:
        """Notice a ``.db`` replaced under its name (the listing is live already); returns this catalog."""
        self.runs.db.refresh()
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain representation with every run's description (intake's ``to_yaml_file`` writes it)."""
        from intake.readers.utils import to_dict

        out = {k: to_dict(v) for k, v in self.__dict__.items() if not k.startswith("_") and k not in ("listing", "data_token")}
        out["entries"] = {k: to_dict(v) for k, v in self.entries.items()}
        out["aliases"] = dict(self.aliases.items())
        return out

    # -- what intake v1's beamtime catalog offers too ---------------------------
    def to_dataframe(self) -> pd.DataFrame:
        """One row per run listed, oldest first: times, status and counts, as intake v1's ``to_dataframe()``."""
        return self.runs.table()

    def stack(
        self, runs: list[Any] | None = None, dim: str = "run", by: str | None = None, stream: str | None = None, **options: Any
    ) -> xr.Dataset:
        """Runs listed here stacked into one lazy Dataset, read in bulk (:meth:`RunSet.stack`).

        ``runs`` are uids, prefixes or positions (default: every run listed);
        ``options``: ``align=``, ``tolerance=``, ``errors=``.
        """
        return self.runs.stack(runs, dim=dim, by=by, stream=stream, **options)

    def events(
        self, stream: str | None = None, fields: list[str] | None = None, *, runs: list[Any] | None = None, **options: Any
    ) -> Any:
        """The scalar events of the runs listed here as one table (:meth:`RunSet.events`); ``options``: ``engine=``, ``errors=``."""
        return self.runs.events(stream, fields, runs=runs, **options)

    def __repr__(self) -> str:
        runs = self.__dict__.get("_runs")
        if runs is None:
            return str(super().__repr__())
        narrowed = f", criteria {runs.query.as_dict_list()}" if runs.query.criteria else ""
        return f"RunCatalog: {len(runs)} runs of {runs.path}{narrowed}"
