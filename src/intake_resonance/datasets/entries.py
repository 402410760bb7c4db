"""Catalog entries made on first access: listing 10 000 runs builds a list of uids, not 10 000 entries."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import TypeVar

__all__ = ["LazyEntries"]

E = TypeVar("E")


class LazyEntries[E](MutableMapping[str, E]):
    """uid -> entry, in listing order; ``make(uid)`` builds an entry the first time it is asked for.

    Both intake faces keep their run entries in one of these. Entries set
    by hand (intake 2's ``Catalog.add_entry``) are kept as given and listed
    after the runs.

    Parameters
    ----------
    uids : iterable of str
        The listed runs, oldest first.
    make : callable
        ``make(uid) -> entry``.
    """

    def __init__(self, uids: Iterable[str], make: Callable[[str], E]) -> None:
        self._made: dict[str, E | None] = dict.fromkeys(uids)
        self._make = make
        self._order: list[str] | None = None

    @property
    def uids(self) -> list[str]:
        """list of str: the keys in order (cached until a key is added or removed)."""
        if self._order is None:
            self._order = list(self._made)
        return self._order

    def made(self, uid: str) -> E | None:
        """The entry of ``uid`` if it was built already, else None (nothing is built)."""
        return self._made.get(uid)

    def __getitem__(self, uid: str) -> E:
        entry = self._made[uid]
        if entry is None:
            entry = self._made[uid] = self._make(uid)
        return entry

    def __setitem__(self, uid: str, entry: E) -> None:
        if uid not in self._made:
            self._order = None
        self._made[uid] = entry

    def __delitem__(self, uid: str) -> None:
        del self._made[uid]
        self._order = None

    def __contains__(self, uid: object) -> bool:
        return uid in self._made

    def __iter__(self) -> Iterator[str]:
        return iter(self._made)

    def __len__(self) -> int:
        return len(self._made)

    def __repr__(self) -> str:
        return f"<{len(self)} run entries>"
