"""The runs table of a beamtime (one row per run, with counts), cached per beamtime state.

A listing is asked for its table again and again (a notebook cell re-run, a
dashboard polling, tiled's listing): the table is built once per state of
the beamtime (:meth:`~intake_resonance.beamtime.format.Database.state`, which
changes with every commit) and handed out as a copy, so a caller may change
its copy freely. A commit, or a file replaced under the same name, makes the
next call build it again. The cache holds the most recently used tables up
to :data:`CACHED_BYTES` in all (a table of 300 000 runs is tens of MB).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..beamtime import records
from ..beamtime.cache import ByteBoundedCache
from ..beamtime.format import Database
from ..beamtime.records import RunQuery

__all__ = ["runs_frame", "build_runs_frame", "utc_times", "CACHED_BYTES"]

#: Bytes of runs tables kept, over every beamtime and search of the process.
CACHED_BYTES = 256 * 2**20

_cache: ByteBoundedCache[tuple[Any, ...], pd.DataFrame] = ByteBoundedCache(
    CACHED_BYTES, lambda df: int(df.memory_usage(deep=True).sum())
)


def utc_times(seconds: Any) -> pd.Series:
    """Epoch seconds as ``datetime64[ns, UTC]`` (NaT for NULL), rounded as the Datasets' ``time`` is."""
    ns = np.round(np.array([np.nan if t is None else t for t in seconds], dtype=np.float64) * 1e9)
    return pd.Series(ns, dtype="float64").astype("Int64").astype("datetime64[ns]").dt.tz_localize("UTC")


def runs_frame(db: Database, query: RunQuery | None, stream: str) -> pd.DataFrame:
    """One row per run matching ``query``, oldest first (see :func:`build_runs_frame`), cached per beamtime state.

    Returns a new copy each call; the table is read again only after a
    commit (or a replaced file).
    """
    key = (str(db.path.resolve()), db.state(), (query or RunQuery()).key, stream)
    hit = _cache.get(key)
    if hit is not None:
        return hit.copy()
    df = build_runs_frame(db, query, stream)
    if db.state() == key[1]:  # nothing committed while it was read: the table is that state's
        _cache.put(key, df)
    return df.copy()


def build_runs_frame(db: Database, query: RunQuery | None, stream: str) -> pd.DataFrame:
    """One row per run matching ``query``, oldest first, read now.

    Columns: uid, plan_name, sample, time_start, time_stop
    (``datetime64[ns, UTC]``, NaT while a run is open), exit_status,
    num_events (committed events of all streams, an open run's too),
    stream_events and frames (of ``stream``: what the run's Dataset holds),
    operator. The counts are defined in :mod:`intake_resonance.beamtime.records.summary`.
    """
    cols = records.runs_table(db, query)
    num_events, stream_events, frames = records.counts_columns(db, cols["uid"], query, stream)
    data: dict[str, Any] = {
        "uid": cols["uid"],
        "plan_name": cols["plan_name"],
        "sample": cols["sample"],
        "time_start": utc_times(cols["time_start"]),
        "time_stop": utc_times(cols["time_stop"]),
        "exit_status": cols["exit_status"],
        "num_events": num_events,
        "stream_events": stream_events,
        "frames": frames,
        "operator": cols["operator"],
    }
    return pd.DataFrame(data)
