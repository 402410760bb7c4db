"""intake 2 readers: a beamtime datatype, run readers and catalogs of runs.

intake 2's own model, beside the v1 drivers of :mod:`.intake_drivers` (which
stay as they are). intake imports this module at its own import time (the
``intake.imports`` entry point), so it only defines classes: xarray, dask,
NumPy and our reading layers are imported inside the methods that need them.

Datatypes
---------
:class:`Beamtime`
    A beamtime ``.db``, recognised by content: the SQLite header and the
    beamtime tables in the schema, so ``intake.datatypes.recommend(path)``
    offers it for a beamtime and not for any other SQLite file.
:class:`BeamtimeFolder`
    A folder of beamtimes (``NAME.db`` + ``NAME.zarr`` pairs).

Readers
-------
:class:`RunReader` (a run -> ``xarray:Dataset``), :class:`RunTreeReader`
(a run -> ``xarray:DataTree``), :class:`BeamtimeReader` (a beamtime ->
:class:`RunCatalog`, whose ``search`` runs in SQL) and
:class:`BeamtimeFolderReader` (a folder -> a Catalog of beamtime readers).
The run readers call :func:`intake_resonance.open_run_dataset` and
:func:`intake_resonance.open_run_tree`, so their Datasets are the ones every
other face gives.

>>> import intake                                                       # doctest: +SKIP
>>> Beamtime in intake.datatypes.recommend("bt.db")                     # doctest: +SKIP
True
>>> runs = Beamtime("bt.db").to_reader().read()                         # doctest: +SKIP
>>> ds = runs.search(plan_name="rsoxs")[-1].read()                      # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import numbers
import os
import re
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from intake.readers.datatypes import FileData, SQLite
from intake.readers.entry import Catalog, ReaderDescription
from intake.readers.readers import BaseReader, FileReader

if TYPE_CHECKING:
    from ..beamtime.records import RunQuery

__all__ = [
    "Beamtime",
    "BeamtimeFolder",
    "RunReader",
    "RunTreeReader",
    "BeamtimeReader",
    "BeamtimeFolderReader",
    "RunCatalog",
    "folder_catalog",
    "local_path",
]

# Packages a run needs when it is read (checked by intake without importing them).
_RUN_IMPORTS = {"xarray", "dask", "zarr", "numpy", "pandas"}


def _create_table(name: str) -> bytes:
    # sqlite_master keeps each CREATE TABLE as written (minus IF NOT EXISTS), names maybe quoted.
    return rb'(?=.*?CREATE\s+TABLE\s+["`\[]?' + name.encode() + rb'["`\]]?\s*\()'


#: The file header and every beamtime table in the schema text (page 1 of the file).
#: Anchored at the start, so intake's ``re.findall`` over the head stays linear.
BEAMTIME_SCHEMA = rb"(?is)\ASQLite format 3\x00" + b"".join(
    _create_table(t) for t in ("image_refs", "streams", "events", "runs", "samples")
)


def local_path(url: Any) -> str:
    """The local path a datatype's ``url`` names (a path or a ``file://`` URL).

    intake's ``{CATALOG_DIR}`` is a ``file://`` URL; SQLite can only open
    local files, so other protocols are refused.
    """
    from ..beamtime.errors import BeamtimeError

    if isinstance(url, (list, tuple)):
        if len(url) != 1:
            raise BeamtimeError(f"one beamtime per reader, got {len(url)} urls: {list(url)}")
        url = url[0]
    text = os.fspath(url)
    if text.startswith("file://"):
        # {CATALOG_DIR}/../x.db: normalised, so attrs name the file as a path would
        return os.path.normpath(unquote(urlsplit(text).path))
    if "://" in text or "::" in text:
        raise BeamtimeError("beamtimes are read from local files only (SQLite cannot open a remote file)", text)
    return text


def _check_options(data: FileData) -> str:
    from ..beamtime.errors import BeamtimeError

    if data.storage_options:
        raise BeamtimeError(f"storage_options {data.storage_options!r} do not apply to local beamtime files", data.url)
    return local_path(data.url)


# ----------------------------------------------------------------- datatypes
class Beamtime(SQLite):
    """A beamtime ``.db`` (its ``.zarr`` store beside it).

    Recognised by content, never by name: the SQLite header followed by the
    ``image_refs``, ``streams``, ``events``, ``runs`` and ``samples`` tables
    in the schema at the head of the file. intake treats a file pattern
    alone as a match, so this type has none (``*.db`` would claim every
    SQLite file).

    Parameters
    ----------
    url : str
        Path of the ``.db`` (or a ``file://`` URL).
    storage_options : dict, optional
        Must be empty: beamtimes are local files.
    metadata : dict, optional
    """

    filepattern = ""
    magic = {(None, BEAMTIME_SCHEMA)}
    structure = {"catalog", "table", "array"}

    def to_reader_cls(self, outtype: tuple[str] | str | None = None, reader: tuple[str] | str | type | None = None) -> Any:
        """Reader class for ``outtype`` or ``reader``; by default the catalog of runs.

        intake would otherwise pick the first importable reader in set order.
        """
        if not outtype and not reader:
            return BeamtimeReader
        return super().to_reader_cls(outtype, reader)


class BeamtimeFolder(FileData):
    """A folder of beamtimes: every ``*.db`` directly in it, named by file stem.

    Not recommended by intake on its own (a folder with any ``.db`` would
    match); make it directly: ``BeamtimeFolder("/data/2026-03")``.
    """

    structure = {"catalog"}


# -------------------------------------------------------------------- readers
class RunReader(FileReader):
    """One stream of one run as an ``xarray.Dataset`` with dask-backed frames.

    Keywords: ``uid`` (full uid or unique prefix of 6+ characters),
    ``stream`` (default ``"primary"``), ``chunks`` and ``drop_variables``, as
    :func:`intake_resonance.open_run_dataset`, which builds the Dataset.
    """

    implements = {Beamtime}
    imports = _RUN_IMPORTS
    output_instance = "xarray:Dataset"
    func = "intake_resonance:open_run_dataset"
    url_arg = "beamtime"

    def _read(
        self,
        data: Beamtime,
        uid: str,
        stream: str = "primary",
        chunks: Any = None,
        drop_variables: Any = None,
        **kwargs: Any,
    ) -> Any:
        from ..datasets.open import open_run_dataset

        _no_other_beamtime(data, kwargs)
        return open_run_dataset(_check_options(data), uid, stream, chunks=chunks, drop_variables=drop_variables)


class RunTreeReader(FileReader):
    """Every stream of one run as an ``xarray.DataTree`` (``/<stream>`` nodes, run attrs at the root).

    Keywords: ``uid`` and ``chunks``, as :func:`intake_resonance.open_run_tree`.
    """

    implements = {Beamtime}
    imports = _RUN_IMPORTS
    output_instance = "xarray:DataTree"
    func = "intake_resonance:open_run_tree"
    url_arg = "beamtime"

    def _read(self, data: Beamtime, uid: str, chunks: Any = None, **kwargs: Any) -> Any:
        from ..datasets.open import open_run_tree

        _no_other_beamtime(data, kwargs)
        return open_run_tree(_check_options(data), uid, chunks=chunks)


def _no_other_beamtime(data: Beamtime, kwargs: dict[str, Any]) -> None:
    # intake.reader_from_call passes the call's keywords on, ``beamtime=`` included.
    other = kwargs.pop("beamtime", data.url)
    if kwargs:
        raise TypeError(f"unexpected keyword argument(s) {', '.join(map(repr, kwargs))} for a run of {data.url}")
    if os.fspath(other) != os.fspath(data.url):
        from ..beamtime.errors import BeamtimeError

        raise BeamtimeError(f"beamtime={other!r} disagrees with the reader's data", data.url)


class BeamtimeReader(BaseReader):
    """A beamtime as a :class:`RunCatalog` of run readers, oldest first.

    Keywords: ``criteria`` (a dict or list of dicts, as ``RunCatalog.search``
    takes them: the catalog is narrowed to them in SQL), ``stream`` and
    ``chunks`` (given to every run reader).
    """

    implements = {Beamtime}
    imports = {"numpy", "orjson"}  # what listing and describing runs needs; reading a run needs more
    output_instance = "intake_resonance.faces.intake_readers:RunCatalog"

    def _read(self, data: Beamtime, criteria: Any = None, stream: str = "primary", chunks: Any = None) -> RunCatalog:
        return RunCatalog.from_beamtime(data, criteria=criteria, stream=stream, chunks=chunks)


class BeamtimeFolderReader(BaseReader):
    """A folder as an intake ``Catalog`` of :class:`BeamtimeReader` entries, named by file stem, sorted.

    Keywords ``stream`` and ``chunks`` are given to every beamtime reader.
    Files are only listed, not opened.
    """

    implements = {BeamtimeFolder}
    output_instance = "intake.readers.entry:Catalog"

    def _read(self, data: BeamtimeFolder, stream: str = "primary", chunks: Any = None) -> Catalog:
        from ..beamtime.errors import BeamtimeNotFoundError

        folder = Path(_check_options(data)).expanduser()
        if not folder.is_dir():
            raise BeamtimeNotFoundError("folder of beamtimes does not exist", folder)
        cat = Catalog(metadata={"description": f"Beamtimes in {folder}", "folder": str(data.url)})
        for db in sorted(folder.glob("*.db")):
            _add_named(cat, db.stem, BeamtimeReader(data=Beamtime(str(db)), stream=stream, chunks=chunks))
        return cat


def _add_named(cat: Catalog, name: str, entry: Any) -> None:
    # Catalog.add_entry(entry, name) keys the entry by name but adds no alias,
    # so the entry would not be listed: key it by token and alias the name.
    cat.aliases[name] = cat.add_entry(entry)


# ------------------------------------------------------------------- catalogs
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


class _RunEntries(MutableMapping):
    """uid -> ReaderDescription, made on first access (one small query each).

    Listing 10 000 runs builds a list of uids, not 10 000 descriptions.
    Entries added by ``Catalog.add_entry`` are kept as given.
    """

    def __init__(self, catalog: RunCatalog, uids: list[str]) -> None:
        self._catalog = catalog
        self._keys: dict[str, ReaderDescription | None] = dict.fromkeys(uids)

    def __getitem__(self, key: str) -> ReaderDescription:
        entry = self._keys[key]
        if entry is None:
            entry = self._keys[key] = self._catalog._make_entry(key)
        return entry

    def __setitem__(self, key: str, value: ReaderDescription) -> None:
        self._keys[key] = value

    def __delitem__(self, key: str) -> None:
        del self._keys[key]

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"<{len(self)} run entries>"


_UID_PREFIX = re.compile(r"[0-9a-fA-F]{6,32}")


class RunCatalog(Catalog):
    """The runs of one beamtime (oldest first) as intake 2 run readers.

    Made by :class:`BeamtimeReader` (or :meth:`from_beamtime`). Each entry
    is a :class:`RunReader` description named by the run's uid; ``cat[uid]``
    gives the reader, ``cat[uid].read()`` the Dataset. Beyond intake's
    Catalog: ``cat[-1]`` (positions), ``cat["3f2a9c"]`` (unique uid
    prefixes), and :meth:`search` with our criteria, answered by SQL.

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
        from ..beamtime.records import RunQuery

        data = beamtime if isinstance(beamtime, Beamtime) else Beamtime(os.fspath(beamtime))
        return cls._listed(data, RunQuery.from_dicts(criteria), stream, chunks)

    @classmethod
    def _listed(cls, data: Beamtime, query: RunQuery, stream: str, chunks: Any) -> RunCatalog:
        from ..beamtime import records
        from ..beamtime.format import Database

        path = _check_options(data)
        with Database(path) as db:
            uids = records.list_uids(db, query)
        desc = data.to_entry()
        cat = cls(
            data={desc.token: desc},
            metadata={"beamtime": str(data.url), "criteria": query.as_dict_list(), "stream": stream},
        )
        cat._state = _Listing(data, path, desc.token, query, stream, chunks, uids)
        cat.entries = _RunEntries(cat, uids)
        cat.aliases = dict(zip(uids, uids))
        return cat

    def _make_entry(self, uid: str) -> ReaderDescription:
        from ..beamtime import records
        from ..beamtime.format import Database

        state = self._state
        with Database(state.path) as db:
            run = records.get_run(db, uid)
            # ISO times and counts as every face shows them (records.summary).
            meta = {} if run is None else records.run_summary(db, run, state.stream)
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
            if isinstance(item, bool):
                raise TypeError("runs are indexed by uid, uid prefix or integer position, not bool")
            if isinstance(item, numbers.Integral):
                uids = list(self.aliases)
                if not -len(uids) <= int(item) < len(uids):
                    raise IndexError(f"run position {int(item)} out of range for {len(uids)} runs in {state.path}")
                item = uids[int(item)]
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
        from ..beamtime import records
        from ..beamtime.format import Database

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
                from ..beamtime.errors import SearchCriterionError

                raise SearchCriterionError(f"search criterion 'text' takes a string or an intake search expression, not {text!r}")
            if criteria:
                raise TypeError("give an intake search expression or criteria, not both")
            return super().search(text)
        if text is not None:
            criteria["text"] = text
        state = self._state
        found = type(self)._listed(state.data, state.query.narrow(**criteria), state.stream, state.chunks)
        found.user_parameters = self.user_parameters.copy()
        found._up_overrides = self._up_overrides.copy()
        return found

    def reload(self) -> RunCatalog:
        """List the runs again (runs written since appear); returns this catalog."""
        from ..beamtime import records
        from ..beamtime.format import Database

        state = self._state
        with Database(state.path) as db:
            state.uids = records.list_uids(db, state.query)
        old, entries = self.entries, _RunEntries(self, state.uids)
        for uid in state.uids:  # keep the descriptions made so far
            made = old._keys.get(uid) if isinstance(old, _RunEntries) else old.get(uid)
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
        text = repr((self.qname(), state.path, state.query.criteria, state.stream, state.chunks, len(self.aliases)))
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
            return super().__repr__()
        narrowed = f", criteria {state.query.as_dict_list()}" if state.query.criteria else ""
        return f"RunCatalog: {len(self.aliases)} runs of {state.path}{narrowed}"


def folder_catalog(folder: str | os.PathLike[str], *, stream: str = "primary") -> Catalog:
    """An intake 2 Catalog for every beamtime ``*.db`` in ``folder`` (paths absolute).

    One :class:`BeamtimeReader` per file, named by its stem, and a
    :class:`BeamtimeFolderReader` for the whole folder, named ``beamtimes``
    (``beamtimes_folder`` if a file is called ``beamtimes.db``). Save it
    with ``to_yaml_file`` and open it with ``intake.from_yaml_file``.
    """
    root = Path(folder).expanduser().resolve()
    cat = Catalog(metadata={"description": f"ALS RSoXS beamtimes in {root}"})
    stems = []
    for db in sorted(root.glob("*.db")):
        _add_named(cat, db.stem, BeamtimeReader(data=Beamtime(str(db)), stream=stream))
        stems.append(db.stem)
    name = "beamtimes_folder" if "beamtimes" in stems else "beamtimes"
    _add_named(cat, name, BeamtimeFolderReader(data=BeamtimeFolder(str(root)), stream=stream))
    return cat
