"""The runs of one beamtime as an intake 2 ``Catalog`` of run readers, searched in SQL."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from intake.readers.entry import Catalog, ReaderDescription

from ...datasets.entries import LazyEntries
from .datatypes import Beamtime, check_local
from .many import ManyRunsMixin
from .runs import RunReader

if TYPE_CHECKING:
    from ...beamtime.records import RunQuery

__all__ = ["RunCatalog"]


@dataclass
class _Listing:
    """What a RunCatalog lists: one query's uids and the reader settings."""

    data: Beamtime
    path: str
    data_token: str
    query: RunQuery
    stream: str
    chunks: Any
    uids: list[str]


_UID_PREFIX = re.compile(r"[0-9a-fA-F]{6,32}")


class RunCatalog(ManyRunsMixin, Catalog):
    """The runs of one beamtime (oldest first) as intake 2 run readers.

    Made by :class:`BeamtimeReader` (or :meth:`from_beamtime`). Each entry
    is a :class:`RunReader` description named by the run's uid; ``cat[uid]``
    gives the reader, ``cat[uid].read()`` the Dataset. Beyond intake's
    Catalog: ``cat[-1]`` (positions), ``cat["3f2a9c"]`` (unique uid
    prefixes), :meth:`search` with our criteria, answered by SQL, and, as
    intake v1's beamtime catalog, ``to_dataframe()``, ``stack()`` and
    ``events()``.

    The catalog holds no open file: each query opens the database read-only
    and closes it. Persisting it (``to_yaml_file``) writes every run's
    description, which intake reads back as a plain Catalog.
    """

    _state: _Listing
    entries: MutableMapping[str, Any]

    @classmethod
    def from_beamtime(
        cls, beamtime: Beamtime | str | os.PathLike[str], criteria: Any = None, stream: str = "primary", chunks: Any = None
    ) -> RunCatalog:
        """List the runs of ``beamtime`` matching ``criteria`` (one SQL query).

        Parameters
        ----------
        beamtime : Beamtime or path
        criteria : dict or list of dict, optional
            As :meth:`search` takes them.
        stream, chunks
            Given to every run reader.
        """
        from ...beamtime.records import RunQuery

        data = beamtime if isinstance(beamtime, Beamtime) else Beamtime(os.fspath(beamtime))
        return cls._listed(data, RunQuery.from_dicts(criteria), stream, chunks)

    @classmethod
    def _listed(cls, data: Beamtime, query: RunQuery, stream: str, chunks: Any) -> RunCatalog:
        from ...beamtime import records
        from ...beamtime.format import Database

        path = check_local(data)
        with Database(path) as db:
            uids = records.list_uids(db, query)
        desc = data.to_entry()
        cat = cls(
            data={desc.token: desc},
            metadata={"beamtime": str(data.url), "criteria": query.as_dict_list(), "stream": stream},
        )
        cat._state = _Listing(data, path, desc.token, query, stream, chunks, uids)
        cat.entries = LazyEntries(uids, cat._make_entry)
        cat.aliases = dict(zip(uids, uids))
        return cat

    def _make_entry(self, uid: str) -> ReaderDescription:
        from ...beamtime.format import Database
        from ...datasets.listing import run_entry_metadata

        state = self._state
        with Database(state.path) as db:
            meta = run_entry_metadata(db, uid, state.stream)
        entry = ReaderDescription(
            reader=RunReader.qname(),
            kwargs={"data": f"{{data({state.data_token})}}", "uid": uid, "stream": state.stream, "chunks": state.chunks},
            output_instance=RunReader.output_instance,
            metadata=meta,
        )
        entry._tok = uid
        return entry

    # -- access ---------------------------------------------------------------
    def __getitem__(self, item: Any) -> Any:
        """A run reader by uid, unique uid prefix (6+ characters) or integer position."""
        state = self.__dict__.get("_state")
        if state is not None:
            from ...datasets.listing import run_position

            at = run_position(item, list(self.aliases), state.path)
            if at is not None:
                item = at
            elif (
                isinstance(item, str)
                and item not in self.aliases
                and item not in self.entries
                and item not in self.data
                and _UID_PREFIX.fullmatch(item)
            ):
                item = self._resolve(item)
        return super().__getitem__(item)

    def _resolve(self, prefix: str) -> str:
        from ...beamtime import records
        from ...beamtime.format import Database

        state = self._state
        with Database(state.path) as db:
            uid = records.resolve_uid(db, prefix, state.query)  # RunNotFoundError is a KeyError
        if uid not in self.entries:  # written since the listing and matching it: list it now
            self.entries[uid] = self._make_entry(uid)
            self.aliases[uid] = uid
        return uid

    def search(self, text: Any = None, **criteria: Any) -> Catalog:
        """A narrower catalog of the same kind, listed by one SQL query; chained calls narrow further.

        Parameters
        ----------
        text : str or intake search expression, optional
            A string: substring of uid, plan name, sample name, operator or
            metadata (in SQL). An ``intake.readers.search`` expression is
            applied by intake in Python to every entry (each is built).
        **criteria
            ``plan_name``, ``sample``, ``exit_status``, ``operator`` (a
            value, a list of values, or None for NULL), ``since``/``until``
            (datetime, ISO text or epoch seconds; naive times are UTC),
            ``metadata`` (a dict), and any other name as a run-metadata key.
        """
        if text is not None and not isinstance(text, str):
            if not callable(getattr(text, "filter", None)):
                from ...beamtime.errors import SearchCriterionError

                raise SearchCriterionError(f"search criterion 'text' takes a string or an intake search expression, not {text!r}")
            if criteria:
                raise TypeError("give an intake search expression or criteria, not both")
            return super().search(text)
        from ...datasets.listing import narrowed

        state = self._state
        found = type(self)._listed(state.data, narrowed(state.query, text, **criteria), state.stream, state.chunks)
        found.user_parameters = self.user_parameters.copy()
        found._up_overrides = self._up_overrides.copy()
        return found

    def reload(self) -> RunCatalog:
        """List the runs again (runs written since appear); returns this catalog."""
        from ...beamtime import records
        from ...beamtime.format import Database

        state = self._state
        with Database(state.path) as db:
            state.uids = records.list_uids(db, state.query)
        old, entries = self.entries, LazyEntries(state.uids, self._make_entry)
        for uid in state.uids:  # keep the descriptions made so far
            made = old.made(uid) if isinstance(old, LazyEntries) else old.get(uid)
            if made is not None:
                entries[uid] = made
        self.entries = entries
        self.aliases = dict(zip(state.uids, state.uids))
        return self

    # -- intake's Catalog, kept lazy ----------------------------------------------
    def __call__(self, **kwargs: Any) -> RunCatalog:
        """A copy with user-parameter overrides set (intake's rule), still a RunCatalog."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new._up_overrides = {**self._up_overrides, **kwargs}
        return new

    def _token(self) -> str:
        # intake's token walks every entry; ours is the query that lists them.
        state = self._state
        text = repr((self.qname(), state.path, state.query.key, state.stream, state.chunks, len(self.aliases)))
        return hashlib.md5(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """Plain representation with every run's description (intake's ``to_yaml_file`` writes it)."""
        from intake.readers.utils import to_dict

        out = {k: to_dict(v) for k, v in self.__dict__.items() if not k.startswith("_") and k != "entries"}
        out["entries"] = {k: to_dict(v) for k, v in self.entries.items()}
        return out

    def __repr__(self) -> str:
        state = self.__dict__.get("_state")
        if state is None:
            return str(super().__repr__())
        narrowed = f", criteria {state.query.as_dict_list()}" if state.query.criteria else ""
        return f"RunCatalog: {len(self.aliases)} runs of {state.path}{narrowed}"
