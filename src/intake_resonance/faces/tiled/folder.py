"""A folder of beamtimes as a tiled container: one beamtime container per ``*.db``, keyed by file stem."""

from __future__ import annotations

import copy
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tiled.server.schemas import SortingDirection, SortingItem
from tiled.structures.core import Spec, StructureFamily
from tiled.utils import UnsupportedQueryType

from ...beamtime.errors import BeamtimeNotFoundError
from ...beamtime.folder import beamtime_files
from ._http import bad_request, http_error
from ._views import SliceableViews
from .containers import BeamtimeAdapter
from .served import DEFAULT_CACHE_SIZE, DEFAULT_TTL
from .streams import DEFAULT_MAX_BYTES

__all__ = ["FolderAdapter"]


class FolderAdapter(SliceableViews):
    """A folder of beamtimes as a tiled container keyed by file stem (sorted).

    The ``*.db`` files directly in the folder; new files appear within
    ``ttl`` seconds. A beamtime that cannot be opened still lists (count 0,
    its one-line error under ``metadata["error"]``); reading it gives the
    HTTP error.
    """

    structure_family = StructureFamily.container
    specs: list[Spec] = []

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        ttl: float = DEFAULT_TTL,
        cache_size: int = DEFAULT_CACHE_SIZE,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.folder = Path(folder).expanduser().absolute()
        if not self.folder.is_dir():
            raise BeamtimeNotFoundError("folder of beamtimes does not exist", self.folder)
        self.ttl = float(ttl)
        self.cache_size = cache_size
        self.max_bytes = max_bytes
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
        try:
            names = [p.stem for p in beamtime_files(self.folder)]
        except BeamtimeNotFoundError as exc:  # the folder went away while served
            raise http_error(exc) from exc
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
                    self.folder / f"{name}.db", ttl=self.ttl, cache_size=self.cache_size, max_bytes=self.max_bytes, in_folder=True
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

