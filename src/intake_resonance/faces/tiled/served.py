"""One served ``.db``: what its requests share.

:class:`Beamtime` holds the handle (reopened when the file is replaced), a
uid listing per state of the beamtime (every request sees the newest
commit, as every face does), and the built nodes of runs and streams
(closed runs stay; open runs are rebuilt after ``ttl``).
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from tiled.adapters.mapping import MapAdapter
from tiled.adapters.xarray import DatasetAdapter

from ...beamtime import records
from ...beamtime.cache import ByteBoundedCache, size_of_strings
from ...beamtime.errors import BeamtimeNotFoundError, RunNotFoundError
from ...beamtime.format import Database
from ...datasets.runset import RunSet
from .search import View
from .streams import DEFAULT_MAX_BYTES, StreamMap, run_metadata, stream_dataset

__all__ = ["DEFAULT_CACHE_SIZE", "DEFAULT_TTL", "Beamtime"]

#: Seconds a folder listing or an open run's node is reused.
DEFAULT_TTL = 1.0
#: Stream datasets kept built (their scalar columns are in memory).
DEFAULT_CACHE_SIZE = 8
#: Bytes of search answers (uid lists) a served beamtime keeps.
LISTINGS_BYTES = 64 * 2**20
#: Bytes of built stream nodes (their scalar and text columns) a served beamtime keeps.
STREAMS_BYTES = 256 * 2**20


class Beamtime:
    """One served ``.db``: its handle, its uid listings and the built nodes.

    Thread-safe: tiled resolves paths on its event loop and reads in worker
    threads.
    """

    def __init__(self, path: str | os.PathLike[str], ttl: float, cache_size: int, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = Path(path).expanduser().absolute()
        self.ttl = float(ttl)
        self.cache_size = max(1, int(cache_size))
        self.max_bytes = int(max_bytes)
        self._lock = threading.RLock()
        self._db: Database | None = None
        self._identity: tuple[int, int] | None = None
        # Search answers (uid lists) by criteria, bounded in bytes: distinct searches of a big beamtime add up.
        self._listings: ByteBoundedCache[tuple[Any, ...], tuple[float, list[str]]] = ByteBoundedCache(
            LISTINGS_BYTES, lambda item: size_of_strings(item[1])
        )
        self._runs: OrderedDict[str, tuple[float, bool, MapAdapter]] = OrderedDict()
        # Built stream nodes hold their scalar columns in memory: kept up to cache_size nodes and STREAMS_BYTES in all.
        self._streams: ByteBoundedCache[tuple[str, str], tuple[float, bool, DatasetAdapter]] = ByteBoundedCache(
            STREAMS_BYTES, lambda item: int(getattr(item[2], "memory", 0)), max_items=self.cache_size
        )

    # -- the file ------------------------------------------------------------
    def db(self) -> Database:
        """The open database; reopened when the file was replaced.

        Raises
        ------
        BeamtimeNotFoundError
            The file is gone (deleted or moved while served).
        """
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self.close()
            raise BeamtimeNotFoundError("beamtime database does not exist (deleted or moved while served)", self.path) from None
        except OSError as exc:
            self.close()
            raise BeamtimeNotFoundError(f"cannot read beamtime database: {exc.strerror}", self.path) from None
        identity = (st.st_dev, st.st_ino)
        with self._lock:
            if self._db is None or identity != self._identity:
                self.close()  # a new file under the old name: nothing cached belongs to it
                self._db = Database(self.path)
                self._identity = identity
            return self._db

    def close(self) -> None:
        """Close the database and forget every cached listing and node."""
        with self._lock:
            if self._db is not None:
                self._db.close()
            self._db = None
            self._identity = None
            self._listings.clear()
            self._runs.clear()
            self._streams.clear()

    def _fresh(self, built: float, final: bool) -> bool:
        return final or time.monotonic() - built < self.ttl

    # -- listings --------------------------------------------------------------
    def uids(self, view: View) -> list[str]:
        """Uids of the runs a view selects, oldest first, as of the newest commit (kept per beamtime state)."""
        db = self.db()
        state = db.state()  # taken first: a commit during the query makes the next request list again
        key = (state, view.cache_key())
        hit = self._listings.get(key)
        if hit is not None:
            return hit[1]
        runs = RunSet(db, view.query)
        # Criteria SQL cannot express (list membership in run metadata, a uid
        # list) narrow the rows of the runs table; no run is opened.
        if not view.filters and view.keys is None:
            uids = runs.uids()
        else:
            uids = [r.uid for r in records.list_runs(db, view.query) if view.accepts(db, r)]
        self._listings.put(key, (time.monotonic(), uids))
        return uids

    # -- nodes -----------------------------------------------------------------
    def run_node(self, uid: str) -> MapAdapter:
        """The container of a run's streams (uid must be a full uid)."""
        db = self.db()
        with self._lock:
            hit = self._runs.get(uid)
            if hit is not None and self._fresh(hit[0], hit[1]):
                self._runs.move_to_end(uid)
                return hit[2]
        run = records.get_run(db, uid)
        if run is None:
            raise RunNotFoundError("no run has this uid", db.path, run=uid)
        streams = [s.name for s in records.list_streams(db, uid)]
        node = MapAdapter(StreamMap(self, uid, streams), metadata=run_metadata(db, run, streams))
        with self._lock:
            self._runs[uid] = (time.monotonic(), run.time_stop is not None, node)
            while len(self._runs) > 64 * self.cache_size:
                self._runs.popitem(last=False)
        return node

    def stream_node(self, uid: str, stream: str) -> DatasetAdapter:
        """A stream of a run as tiled's xarray dataset."""
        db = self.db()
        key = (uid, stream)
        hit = self._streams.get(key)
        if hit is not None and self._fresh(hit[0], hit[1]):
            return hit[2]
        run = records.get_run(db, uid)
        if run is None:
            raise RunNotFoundError("no run has this uid", db.path, run=uid)
        node = stream_dataset(db, uid, stream, max_bytes=self.max_bytes)
        self._streams.put(key, (time.monotonic(), run.time_stop is not None, node))
        return node
