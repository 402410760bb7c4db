"""``resonance_beamtimes``: a folder of beamtimes as an intake catalog of beamtime catalogs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from intake.catalog import Catalog
from intake.catalog.local import LocalCatalogEntry

from ..._version import __version__
from ...beamtime.errors import BeamtimeNotFoundError, RunNotFoundError
from ...beamtime.folder import beamtime_files
from ._fresh import FreshnessMixin
from .beamtime import BeamtimeCatalog

__all__ = ["BeamtimesCatalog"]


class BeamtimesCatalog(FreshnessMixin, Catalog):
    """A folder of beamtimes as a catalog of :class:`BeamtimeCatalog`.

    Entries are the ``*.db`` files directly in the folder, named by file
    stem (``data/beamtime.db`` -> ``beamtime``) and sorted. New files appear
    on ``reload()`` (or after ``ttl``).

    Parameters
    ----------
    path : str
        The folder.
    stream, chunks
        Passed on to each beamtime catalog.
    """

    name = "resonance_beamtimes"
    version = __version__
    container = "catalog"

    def __init__(self, path: str, stream: str = "primary", chunks: Any = None, **kwargs: Any) -> None:
        self.path = str(path)
        self.stream = stream
        self.chunks = chunks
        kwargs.setdefault("name", Path(self.path).name)
        super().__init__(**kwargs)

    def _load(self) -> None:
        if not self.path.strip():  # a YAML template opened without a folder: fail on use (_get_entries), not on access
            self._entries = {}
            return
        entries = {}
        for db in beamtime_files(self.path):
            entries[db.stem] = LocalCatalogEntry(
                name=db.stem,
                description=f"beamtime {db.name}",
                driver=BeamtimeCatalog,
                direct_access="allow",
                args={"path": str(db), "stream": self.stream, "chunks": self.chunks},
                catalog=self,
            )
        self._entries = entries

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str) and key not in self._get_entries():
            self.force_reload()  # a file that appeared since the last read
            if key not in self._entries:
                raise RunNotFoundError(
                    f"no beamtime named {key!r} (have: {', '.join(self._entries) or 'none'})", self.path
                )
        return super().__getitem__(key)

    def _get_entries(self) -> Any:
        if not self.path.strip():
            raise BeamtimeNotFoundError(
                "no folder of beamtimes given: pass folder=... or set RESONANCE_DATA", "(empty path)"
            )
        return super()._get_entries()
