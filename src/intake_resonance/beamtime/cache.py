"""A least-recently-used cache bounded in bytes, not entries.

Caches of tables and uid lists grow with the beamtime: sixteen runs tables
of 300 000 runs, or 64 search answers of a served beamtime, are gigabytes.
Each cache here holds values until their estimated sizes add up to its
budget, then drops the least recently used; a value larger than the whole
budget is not kept at all.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable

__all__ = ["ByteBoundedCache", "size_of_strings"]


class ByteBoundedCache[K: Hashable, V]:
    """Thread-safe LRU cache whose values' sizes (``sizeof(value)``, bytes) stay within ``max_bytes``.

    Parameters
    ----------
    max_bytes : int
        The budget.
    sizeof : callable
        A value's size in bytes (an estimate of what it holds in memory).
    max_items : int, optional
        Also keep no more than this many values.
    """

    def __init__(self, max_bytes: int, sizeof: Callable[[V], int], max_items: int | None = None) -> None:
        self.max_bytes = int(max_bytes)
        self.max_items = max_items
        self._sizeof = sizeof
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        """The value of ``key`` (now the most recently used), or None."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: K, value: V) -> None:
        """Keep ``value``, dropping the least recently used values until the budget holds."""
        size = int(self._sizeof(value))
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.max_bytes:
                return
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes or (self.max_items is not None and len(self._items) > self.max_items):
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    def clear(self) -> None:
        """Forget every value."""
        with self._lock:
            self._items.clear()
            self._bytes = 0


def size_of_strings(strings: Iterable[str]) -> int:
    """Bytes a list or set of strings holds: the strings and a pointer to each."""
    return sum(sys.getsizeof(s) + 8 for s in strings) + 64
