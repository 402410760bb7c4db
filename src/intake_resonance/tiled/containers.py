"""Containers: a beamtime (runs, oldest first, by uid) and a folder of beamtimes (by stem).

:class:`Beamtime` holds what one served ``.db`` shares between requests: the
handle (reopened when the file is replaced), a uid listing reused for
``ttl`` seconds, and the built nodes of runs and streams (closed runs stay;
open runs are rebuilt after ``ttl``).
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from tiled.adapters.mapping import MapAdapter
from tiled.adapters.xarray import DatasetAdapter
from tiled.iterviews import ItemsView, KeysView, ValuesView
from tiled.query_registration import QueryTranslationRegistry
from tiled.server.schemas import SortingDirection, SortingItem
from tiled.structures.core import Spec, StructureFamily
from tiled.utils import UnsupportedQueryType

from .. import records
from ..errors import BeamtimeError, BeamtimeNotFoundError, RunNotFoundError
from ..format import Database
from ._http import bad_request, http_error, one_line, served
from .search import TIME_KEYS, TRANSLATORS, View
from .streams import StreamMap, run_metadata, stream_dataset

__all__ = ["DEFAULT_CACHE_SIZE", "DEFAULT_TTL", "Beamtime", "BeamtimeAdapter", "FolderAdapter"]

#: Seconds a uid listing, a folder listing or an open run's node is reused.
DEFAULT_TTL = 1.0
#: Stream datasets kept built (their scalar columns are in memory).
DEFAULT_CACHE_SIZE = 8


class Beamtime:
    """One served ``.db``: its handle, a short-lived uid listing and the built nodes.

    Thread-safe: tiled resolves paths on its event loop and reads in worker
    threads.
    """

    def __init__(self, path: str | os.PathLike[str], ttl: float, cache_size: int) -> None:
        self.path = Path(path).expanduser().absolute()
        self.ttl = float(ttl)
        self.cache_size = max(1, int(cache_size))
        self._lock = threading.RLock()
        self._db: Database | None = None
        self._identity: tuple[int, int] | None = None
        self._listings: dict[tuple[Any, ...], tuple[float, list[str]]] = {}
        self._runs: OrderedDict[str, tuple[float, bool, MapAdapter]] = OrderedDict()
        self._streams: OrderedDict[tuple[str, str], tuple[float, bool, DatasetAdapter]] = OrderedDict()

    # -- the file ------------------------------------------------------------
    def db(self) -> Database:
        """The open database; reopened when the file was replaced.

        Raises
        ------
        BeamtimeNotFoundError
            The file is gone (deleted or moved while served).
        """
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self.close()
            raise BeamtimeNotFoundError("beamtime database does not exist (deleted or moved while served)", self.path) from None
        except OSError as exc:
            self.close()
            raise BeamtimeNotFoundError(f"cannot read beamtime database: {exc.strerror}", self.path) from None
        identity = (st.st_dev, st.st_ino)
        with self._lock:
            if self._db is None or identity != self._identity:
                self.close()  # a new file under the old name: nothing cached belongs to it
                self._db = Database(self.path)
                self._identity = identity
            return self._db

    def close(self) -> None:
        """Close the database and forget every cached listing and node."""
        with self._lock:
            if self._db is not None:
                self._db.close()
            self._db = None
            self._identity = None
            self._listings.clear()
            self._runs.clear()
            self._streams.clear()

    def _fresh(self, built: float, final: bool) -> bool:
        return final or time.monotonic() - built < self.ttl

    # -- listings --------------------------------------------------------------
    def uids(self, view: View) -> list[str]:
        """Uids of the runs a view selects, oldest first (reused for ``ttl`` seconds)."""
        db = self.db()
        key = view.cache_key()
        with self._lock:
            hit = self._listings.get(key)
            if hit is not None and self._fresh(hit[0], False):
                return hit[1]
        if not view.filters and view.keys is None:
            uids = records.list_uids(db, view.query)
        else:
            # Criteria SQL cannot express (list membership in run metadata, a
            # uid list) narrow the rows of the runs table; no run is opened.
            uids = [r.uid for r in records.list_runs(db, view.query) if view.accepts(db, r)]
        with self._lock:
            if len(self._listings) > 64:
                self._listings.clear()
            self._listings[key] = (time.monotonic(), uids)
        return uids

    # -- nodes -----------------------------------------------------------------
    def run_node(self, uid: str) -> MapAdapter:
        """The container of a run's streams (uid must be a full uid)."""
        db = self.db()
        with self._lock:
            hit = self._runs.get(uid)
            if hit is not None and self._fresh(hit[0], hit[1]):
                self._runs.move_to_end(uid)
                return hit[2]
        run = records.get_run(db, uid)
        if run is None:
            raise RunNotFoundError("no run has this uid", db.path, run=uid)
        streams = [s.name for s in records.list_streams(db, uid)]
        node = MapAdapter(StreamMap(self, uid, streams), metadata=run_metadata(db, run, streams))
        with self._lock:
            self._runs[uid] = (time.monotonic(), run.time_stop is not None, node)
            while len(self._runs) > 64 * self.cache_size:
                self._runs.popitem(last=False)
        return node

    def stream_node(self, uid: str, stream: str) -> DatasetAdapter:
        """A stream of a run as tiled's xarray dataset."""
        db = self.db()
        key = (uid, stream)
        with self._lock:
            hit = self._streams.get(key)
            if hit is not None and self._fresh(hit[0], hit[1]):
                self._streams.move_to_end(key)
                return hit[2]
        run = records.get_run(db, uid)
        if run is None:
            raise RunNotFoundError("no run has this uid", db.path, run=uid)
        node = stream_dataset(db, uid, stream)
        with self._lock:
            self._streams[key] = (time.monotonic(), run.time_stop is not None, node)
            while len(self._streams) > self.cache_size:
                self._streams.popitem(last=False)
        return node



class _SliceableViews:
    """``keys()``, ``values()`` and ``items()`` as tiled's sliceable views (what tiled pages through).

    A container gives ``__len__``, ``_keys_slice`` and ``_items_slice``.
    """

    def __len__(self) -> int:
        raise NotImplementedError

    def _keys_slice(self, start: int, stop: int | None, direction: int, page_size: int | None = None) -> list[str]:
        raise NotImplementedError

    def _items_slice(
        self, start: int, stop: int | None, direction: int, page_size: int | None = None
    ) -> Iterator[tuple[str, Any]]:
        raise NotImplementedError

    def keys(self) -> KeysView:
        """A sliceable view of the keys (uids, or beamtime names in a folder)."""
        return KeysView(lambda: len(self), self._keys_slice)

    def values(self) -> ValuesView:
        """A sliceable view of the child nodes."""
        return ValuesView(lambda: len(self), self._items_slice)

    def items(self) -> ItemsView:
        """A sliceable view of ``(key, child node)`` pairs."""
        return ItemsView(lambda: len(self), self._items_slice)


class BeamtimeAdapter(_SliceableViews):
    """A beamtime as a tiled container of runs: oldest first, keyed by uid.

    Listing asks SQL for uids only; a run's node is built when a page of the
    listing or a request names it. Searches narrow a :class:`.records.RunQuery`.
    A run is also found by a unique uid prefix (6+ characters).

    Parameters
    ----------
    path : str or Path
        The beamtime's ``.db`` (its ``.zarr`` beside it).
    ttl : float
        Seconds a uid listing and an open run's node are reused (default 1).
    cache_size : int
        Stream datasets kept built.
    """

    structure_family = StructureFamily.container
    query_registry = QueryTranslationRegistry()
    register_query = query_registry.register
    specs: list[Spec] = []

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        ttl: float = DEFAULT_TTL,
        cache_size: int = DEFAULT_CACHE_SIZE,
        in_folder: bool = False,
        _source: Beamtime | None = None,
        _view: View | None = None,
    ) -> None:
        self._source = _source or Beamtime(path, ttl, cache_size)
        self._view = _view or View()
        self._in_folder = in_folder
        self.shutdown_tasks = [self._shutdown]

    async def _shutdown(self) -> None:
        self.close()

    def close(self) -> None:
        """Close the database (reopened by the next request)."""
        self._source.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {str(self._source.path)!r}>"

    # -- node protocol -------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """Name and file of the beamtime; ``error`` when it cannot be opened."""
        meta: dict[str, Any] = {"name": self._source.path.stem, "file": self._source.path.name}
        try:
            meta["schema_version"] = self._source.db().schema_version
        except BeamtimeError as exc:
            if not self._in_folder:
                raise http_error(exc) from exc
            meta["error"] = one_line(exc)
        return meta

    def structure(self) -> None:
        """None: the keys are served page by page."""
        return None

    @property
    def sorting(self) -> list[SortingItem]:
        """Oldest first (``"_"``); reversed with ``-_``."""
        direction = SortingDirection.DESCENDING if self._view.reverse else SortingDirection.ASCENDING
        return [SortingItem(key="_", direction=direction)]

    def _uids(self) -> list[str]:
        with served():
            uids = self._source.uids(self._view)
        return uids[::-1] if self._view.reverse else uids

    def __len__(self) -> int:
        if self._in_folder:
            # A broken beamtime in a folder lists as empty (its metadata says why);
            # reading it gives the error.
            try:
                return len(self._source.uids(self._view))
            except BeamtimeError:
                return 0
        return len(self._uids())

    def __iter__(self) -> Iterator[str]:
        return iter(self._uids())

    def __contains__(self, key: object) -> bool:
        return key in self._uids()

    def __getitem__(self, key: str) -> MapAdapter:
        with served():
            try:
                uid = records.resolve_uid(self._source.db(), key, self._view.query)
            except RunNotFoundError as exc:
                raise KeyError(key) from exc
            if self._view.filters or self._view.keys is not None:
                if uid not in self._source.uids(self._view):
                    raise KeyError(key)
            return self._source.run_node(uid)

    def _keys_slice(self, start: int, stop: int | None, direction: int, page_size: int | None = None) -> list[str]:
        uids = self._uids()
        if direction < 0:
            uids = uids[::-1]
        return uids[start:stop]

    def _items_slice(
        self, start: int, stop: int | None, direction: int, page_size: int | None = None
    ) -> Iterator[tuple[str, MapAdapter]]:
        for uid in self._keys_slice(start, stop, direction):
            with served():
                yield uid, self._source.run_node(uid)

    # -- search and sorting -----------------------------------------------------
    def search(self, query: Any) -> BeamtimeAdapter:
        """A narrower container; the query becomes SQL criteria (see the module notes)."""
        return self.query_registry(query, self)

    def sort(self, sorting: list[tuple[str, int]]) -> BeamtimeAdapter:
        """Runs are ordered by start time: ``_``/``time_start`` ascending or descending."""
        reverse = self._view.reverse
        for key, direction in sorting:
            if key not in ("_", "", *TIME_KEYS):
                raise bad_request(f"runs are sorted by start time only ('_' or 'time_start'), not {key!r}")
            reverse = int(direction) < 0
        view = self._view
        return self._narrowed(View(view.query, view.filters, view.keys, reverse))

    def read(self, fields: Any = None) -> Any:
        """Refused: a whole beamtime is not one download; read a run's stream instead."""
        raise bad_request("a whole beamtime is not served as one download; read a run's stream instead")

    def _narrowed(self, view: View) -> BeamtimeAdapter:
        return type(self)(self._source.path, in_folder=self._in_folder, _source=self._source, _view=view)

    def _with_filter(self, op: str, key: str, value: Any) -> BeamtimeAdapter:
        view = self._view
        item = (op, key, orjson.dumps(value).decode())
        return self._narrowed(View(view.query, (*view.filters, item), view.keys, view.reverse))



for _query_type, _translate in TRANSLATORS.items():
    BeamtimeAdapter.register_query(_query_type, _translate)


class FolderAdapter(_SliceableViews):
    """A folder of beamtimes as a tiled container keyed by file stem (sorted).

    The ``*.db`` files directly in the folder; new files appear within
    ``ttl`` seconds. A beamtime that cannot be opened still lists (count 0,
    its one-line error under ``metadata["error"]``); reading it gives the
    HTTP error.
    """

    structure_family = StructureFamily.container
    specs: list[Spec] = []

    def __init__(self, folder: str | os.PathLike[str], *, ttl: float = DEFAULT_TTL, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self.folder = Path(folder).expanduser().absolute()
        if not self.folder.is_dir():
            raise BeamtimeNotFoundError("folder of beamtimes does not exist", self.folder)
        self.ttl = float(ttl)
        self.cache_size = cache_size
        self._lock = threading.Lock()
        self._listed: tuple[float, list[str]] | None = None
        self._children: dict[str, BeamtimeAdapter] = {}
        self._reverse = False
        self.shutdown_tasks = [self._shutdown]

    async def _shutdown(self) -> None:
        self.close()

    def close(self) -> None:
        """Close every beamtime's database."""
        with self._lock:
            for child in self._children.values():
                child.close()

    def metadata(self) -> dict[str, Any]:
        """The folder's name."""
        return {"name": self.folder.name}

    def structure(self) -> None:
        """None: the keys are listed on request."""
        return None

    @property
    def sorting(self) -> list[SortingItem]:
        """By file stem (``-_``: reversed)."""
        direction = SortingDirection.DESCENDING if self._reverse else SortingDirection.ASCENDING
        return [SortingItem(key="_", direction=direction)]

    def sort(self, sorting: list[tuple[str, int]]) -> FolderAdapter:
        """Beamtimes are ordered by name: ``_`` ascending or descending."""
        reverse = self._reverse
        for key, direction in sorting:
            if key not in ("_", ""):
                raise bad_request(f"beamtimes are sorted by name only ('_'), not {key!r}")
            reverse = int(direction) < 0
        view = copy.copy(self)  # shares the listing's state and the beamtimes
        view._reverse = reverse
        return view

    def _names(self) -> list[str]:
        with self._lock:
            if self._listed is not None and time.monotonic() - self._listed[0] < self.ttl:
                return self._listed[1]
        if not self.folder.is_dir():
            raise http_error(BeamtimeNotFoundError("folder of beamtimes does not exist", self.folder))
        names = sorted(p.stem for p in self.folder.glob("*.db") if p.is_file())
        with self._lock:
            self._listed = (time.monotonic(), names)
        return names

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys_slice(0, None, 1))

    def __getitem__(self, name: str) -> BeamtimeAdapter:
        # A name the listing has not caught up with yet is taken only as a plain file
        # stem: a key sent by a client never reaches a file outside the folder.
        plain = bool(name) and Path(name).name == name and name not in (".", "..") and "\0" not in name
        if name not in self._names() and not (plain and (self.folder / f"{name}.db").is_file()):
            raise KeyError(name)
        with self._lock:
            child = self._children.get(name)
            if child is None:
                child = self._children[name] = BeamtimeAdapter(
                    self.folder / f"{name}.db", ttl=self.ttl, cache_size=self.cache_size, in_folder=True
                )
        return child

    def _keys_slice(self, start: int, stop: int | None, direction: int, page_size: int | None = None) -> list[str]:
        names = self._names()
        return (names if (direction > 0) != self._reverse else names[::-1])[start:stop]

    def _items_slice(
        self, start: int, stop: int | None, direction: int, page_size: int | None = None
    ) -> Iterator[tuple[str, BeamtimeAdapter]]:
        for name in self._keys_slice(start, stop, direction):
            yield name, self[name]

    def search(self, query: Any) -> Any:
        """Not offered on a folder (400): search within a beamtime."""
        raise UnsupportedQueryType(type(query).__name__)

    def read(self, fields: Any = None) -> Any:
        """Refused: a folder of beamtimes is not one download."""
        raise bad_request("a folder of beamtimes is not served as one download; read a run's stream instead")

