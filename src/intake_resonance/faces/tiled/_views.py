"""``keys()``, ``values()`` and ``items()`` as tiled pages through them, for both containers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tiled.iterviews import ItemsView, KeysView, ValuesView

__all__ = ["SliceableViews"]


class SliceableViews:
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
