"""A run inside an open beamtime, and the one helper that opens beamtimes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..beamtime.format import Database

__all__ = ["RunLocation", "open_database"]


class RunLocation(os.PathLike[str]):
    """What :func:`open_run_dataset` hands to ``xr.open_dataset``: a run in an open beamtime.

    It is path-like (its path is the ``.db``), and its dask token names the
    resolved file, the run, the stream and the frame references the engine
    read (``revision``, filled in by the engine), so dask names follow the
    data, not the file's modification time.
    """

    def __init__(self, db: Database, uid: str, stream: str) -> None:
        self.db = db
        self.uid = uid
        self.stream = stream
        self.revision: str | None = None

    @property
    def path(self) -> str:
        """str: the beamtime's ``.db`` (what xarray records as the source)."""
        return str(self.db.path)

    def __fspath__(self) -> str:
        return self.path

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return ("resonance-run", str(self.db.path.resolve()), self.uid, self.stream, self.revision)

    def __repr__(self) -> str:
        return f"RunLocation({self.path!r}, {self.uid!r}, {self.stream!r})"


@contextmanager
def open_database(beamtime: Database | str | os.PathLike[str]) -> Iterator[Database]:
    """Yield a :class:`Database` for ``beamtime``; close it afterwards only if it was opened here.

    Every face opens beamtimes through this helper, so who closes a
    connection is never in doubt: a ``Database`` passed in belongs to the
    caller, one opened from a path belongs to the block.
    """
    if isinstance(beamtime, Database):
        yield beamtime
        return
    with Database(os.fspath(beamtime)) as db:
        yield db
