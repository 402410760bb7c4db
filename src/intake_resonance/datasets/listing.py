"""What every catalog face shares: naming, listing, counting and describing the runs of a beamtime.

The intake v1 drivers, the intake 2 catalog and tiled translate their own
calls into these functions, so a key, a search or the runs table means the
same through each of them.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..beamtime import records
from ..beamtime.format import Database
from ..beamtime.records import RunQuery
from .runs_table import runs_frame, utc_times  # the faces' one name for the runs table

__all__ = ["narrowed", "run_entry_metadata", "run_key", "run_keys", "run_position", "runs_frame", "utc_times"]


def run_position(key: Any, listed: Sequence[str], path: Any) -> str | None:
    """The uid at an integer position (negative from the end) of ``listed``; None when ``key`` is no integer.

    Raises
    ------
    TypeError
        A ``bool`` key (almost surely a mistake).
    IndexError
        A position out of range (the message names ``path``, the beamtime).
    """
    if isinstance(key, (bool, np.bool_)):
        raise TypeError("runs are indexed by uid, uid prefix or integer position, not bool")
    if not isinstance(key, numbers.Integral):
        return None
    if not -len(listed) <= int(key) < len(listed):
        raise IndexError(f"run position {int(key)} out of range for {len(listed)} runs in {path}")
    return listed[int(key)]


def run_key(db: Database, key: Any, listed: Sequence[str], query: RunQuery | None = None) -> str:
    """The uid a catalog key names: a listed uid, an integer position in ``listed``, or a unique uid prefix.

    Parameters
    ----------
    db : Database
        The open beamtime.
    key : str or int
        A uid, a prefix of 6+ characters (among runs matching ``query``) or a
        position (negative from the end) in ``listed``.
    listed : sequence of str
        The catalog's uids, oldest first.
    query : RunQuery, optional
        What the catalog is narrowed to; a prefix is resolved among its runs.

    Raises
    ------
    TypeError
        A ``bool`` key, or a key neither text nor an integer.
    IndexError
        A position out of range.
    RunNotFoundError
        An unknown, too short or ambiguous uid or prefix (a ``KeyError``).
    """
    uid = run_position(key, listed, db.path)
    if uid is not None:
        return uid
    if isinstance(key, str):
        return records.resolve_uid(db, key, query)
    raise TypeError(f"runs are indexed by uid, uid prefix or integer position, not {type(key).__name__}")


def run_keys(db: Database, keys: Iterable[Any] | None, listed: Sequence[str], query: RunQuery | None = None) -> list[str]:
    """:func:`run_key` of each key, in order; ``None`` means every listed run."""
    if keys is None:
        return list(listed)
    known = set(listed)
    return [k if isinstance(k, str) and k in known else run_key(db, k, listed, query) for k in keys]


def run_entry_metadata(db: Database, uid: str, stream: str) -> dict[str, Any]:
    """A catalog entry's metadata: ISO times and counts as every face shows them (:mod:`.records.summary`).

    Empty when the run has gone since it was listed.
    """
    run = records.get_run(db, uid)
    return {} if run is None else records.run_summary(db, run, stream)


def narrowed(query: RunQuery, text: str | None = None, **criteria: Any) -> RunQuery:
    """``query`` narrowed by search criteria (``text`` is the free-text criterion); all become SQL parameters."""
    if text is not None:
        criteria["text"] = text
    return query.narrow(**criteria)

