"""The beamline reader's ``Catalog``: one beamtime's runs, read-only."""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Any

from ...beamtime import records
from ...beamtime.format import Database
from .run import Run
from .summaries import RunSummary, run_summary

__all__ = ["Catalog"]


class Catalog:
    """Read-only access to the runs of one beamtime.

    Parameters
    ----------
    db_path : str or Path
        The beamtime's ``.db`` file; its frames are read from the ``.zarr``
        store beside it.

    Raises
    ------
    BeamtimeNotFoundError
        If ``db_path`` does not exist (also a ``FileNotFoundError``).
    BeamtimeFormatError
        If it is not a beamtime database this package can read.

    Examples
    --------
    >>> with Catalog("beamtime.db") as cat:                  # doctest: +SKIP
    ...     latest = cat.recent(1)[0]
    ...     run = cat[latest.uid]
    ...     df = run.table()
    ...     first = run.images()[0]
    """

    def __init__(self, db_path: str | Path) -> None:
        self._db = Database(db_path)
        self._closed = False

    @property
    def path(self) -> Path:
        """Path: the beamtime's ``.db`` file."""
        return self._db.path

    @property
    def zarr_path(self) -> Path:
        """Path: the ``.zarr`` store holding the frames."""
        return self._db.zarr_path

    @property
    def closed(self) -> bool:
        """bool: whether :meth:`close` was called."""
        return self._closed

    def _database(self) -> Database:
        # Database reopens lazily after close(); a closed facade must stay closed,
        # like the beamline's, whose connection is gone for good.
        if self._closed:
            raise ValueError(f"{self.path}: operation on a closed Catalog")
        # One stat per call: a .db replaced since (rsync lands a new inode) is read
        # afresh, a deleted one raises BeamtimeNotFoundError; never the old file's runs.
        self._db.refresh()
        return self._db

    def recent(self, n: int = 10) -> list[RunSummary]:
        """The ``n`` runs that started last.

        Parameters
        ----------
        n : int, default 10
            How many runs at most; a negative ``n`` returns all of them.

        Returns
        -------
        list of RunSummary
            Newest first (by ``time_start``).
        """
        n = operator.index(n)  # SQLite would refuse a float LIMIT less clearly
        return [run_summary(rec) for rec in records.recent_runs(self._database(), n)]

    def by_sample(self, name: str) -> list[RunSummary]:
        """The runs whose sample is named exactly ``name``.

        Parameters
        ----------
        name : str
            The sample's name; several sample rows may share it.

        Returns
        -------
        list of RunSummary
            Newest first; runs without a sample never match.
        """
        return [run_summary(rec) for rec in records.runs_by_sample(self._database(), name)]

    def __getitem__(self, uid: str) -> Run:
        """The run with exactly this uid.

        Parameters
        ----------
        uid : str
            The run's full hex uid (no prefixes, as in the beamline reader).

        Returns
        -------
        Run

        Raises
        ------
        KeyError
            ``KeyError(uid)`` when no run has this uid.
        """
        db = self._database()
        rec = records.get_run(db, uid) if isinstance(uid, str) else None
        if rec is None:
            # args[0] must be the uid itself: scripts written for the beamline rely on it.
            raise KeyError(uid)
        return Run(self._database, rec)

    def close(self) -> None:
        """Close the database connection; the catalog cannot be used afterwards."""
        self._closed = True
        self._db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " (closed)" if self._closed else ""
        return f"<Catalog {str(self.path)!r}{state}>"
