"""``resonance_beamtimes``: a folder of beamtimes as an intake catalog of beamtime catalogs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from intake.catalog import Catalog
from intake.catalog.local import LocalCatalogEntry

from ..._version import __version__
from ...beamtime.errors import BeamtimeNotFoundError, RunNotFoundError
from ...beamtime.folder import beamtime_files
from ...datasets.runset import LiveEntries
from .beamtime import BeamtimeCatalog

__all__ = ["BeamtimesCatalog"]


class BeamtimesCatalog(Catalog):
    """A folder of beamtimes as a catalog of :class:`BeamtimeCatalog`.

    Entries are the ``*.db`` files directly in the folder, named by file
    stem (``data/beamtime.db`` -> ``beamtime``) and sorted. The folder is
    listed at every access: a new file appears at once.

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

    # intake documents this hook for catalogs backed by a dynamic resource:
    # the entries are a live mapping over the folder, listed at each access.
    def _make_entries_container(self) -> LiveEntries[LocalCatalogEntry]:
        return LiveEntries(self._listing, self._make_entry, name=f"beamtimes in {self.path!r}")

    def _load(self) -> None:
        if self.path.strip():
            self._listing()  # a folder that is not there is an error at once, not at first use

    def _listing(self) -> tuple[list[str], dict[str, Path]]:
        if not self.path.strip():  # a YAML template opened without a folder: fail on use, not on access
            raise BeamtimeNotFoundError("no folder of beamtimes given: pass folder=... or set RESONANCE_DATA", "(empty path)")
        files = {db.stem: db for db in beamtime_files(self.path)}
        return list(files), files

    def _make_entry(self, stem: str) -> LocalCatalogEntry:
        db = self._listing()[1][stem]
        return LocalCatalogEntry(
            name=stem,
            description=f"beamtime {db.name}",
            driver=BeamtimeCatalog,
            direct_access="allow",
            args={"path": str(db.absolute()), "stream": self.stream, "chunks": self.chunks},
            catalog=self,
        )

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str) and key not in self:
            names = list(self)
            raise RunNotFoundError(f"no beamtime named {key!r} (have: {', '.join(names) or 'none'})", self.path)
        return super().__getitem__(key)
