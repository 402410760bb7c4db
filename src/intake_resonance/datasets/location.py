"""The one helper that opens beamtimes for the layers above."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from ..beamtime.format import Database

__all__ = ["open_database"]


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
