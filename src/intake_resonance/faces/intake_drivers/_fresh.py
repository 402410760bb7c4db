"""When an intake v1 catalog re-reads: an explicit ``reload()`` always, otherwise after ``ttl``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

__all__ = ["FreshnessMixin"]


class FreshnessMixin:
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
