"""A beamtime as a tiled container of runs: oldest first, keyed by uid, searched in SQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import orjson
from tiled.adapters.mapping import MapAdapter
from tiled.query_registration import QueryTranslationRegistry
from tiled.server.schemas import SortingDirection, SortingItem
from tiled.structures.core import Spec, StructureFamily

from ...beamtime import records
from ...beamtime.errors import BeamtimeError, RunNotFoundError
from ._http import bad_request, http_error, one_line, public_text, served
from ._views import SliceableViews
from .search import TIME_KEYS, TRANSLATORS, View
from .served import DEFAULT_CACHE_SIZE, DEFAULT_TTL, Beamtime
from .streams import DEFAULT_MAX_BYTES

__all__ = ["DEFAULT_CACHE_SIZE", "DEFAULT_TTL", "Beamtime", "BeamtimeAdapter"]


class BeamtimeAdapter(SliceableViews):
    """A beamtime as a tiled container of runs: oldest first, keyed by uid.

    Listing asks SQL for uids only; a run's node is built when a page of the
    listing or a request names it. Searches narrow a :class:`.records.RunQuery`.
    A run is also found by a unique uid prefix (6+ characters).

    Parameters
    ----------
    path : str or Path
        The beamtime's ``.db`` (its ``.zarr`` beside it).
    ttl : float
        Seconds an open run's node is reused (default 1); the listing is always the newest commit's.
    cache_size : int
        Stream datasets kept built.
    max_bytes : int
        Largest frame read one request may ask for (larger: 413).
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
        max_bytes: int = DEFAULT_MAX_BYTES,
        in_folder: bool = False,
        _source: Beamtime | None = None,
        _view: View | None = None,
    ) -> None:
        self._source = _source or Beamtime(path, ttl, cache_size, max_bytes)
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
            meta["error"] = public_text(one_line(exc), self._source.path)  # no server path in an answer
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
        narrower: BeamtimeAdapter = self.query_registry(query, self)
        return narrower

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
