"""Beamtimes served over HTTP by tiled: adapters for tiled's server.

A beamtime becomes a container of runs (oldest first, keyed by uid), a run a
container of its streams, a stream tiled's xarray dataset (``time``,
``seq_num``, one array per scalar field, one chunked array per image field).
A folder of beamtimes becomes a container of beamtimes keyed by file stem.
Nothing is copied: every request reads the ``.db`` and ``.zarr`` in place,
read-only, through the package's own layers (:mod:`.records`,
:func:`.dataset.open_run_dataset`, :class:`.frames.FrameStack`).

Entry points for ``tiled serve config``::

    trees:
      - path: /
        tree: intake_resonance.tiled:beamtime_tree
        args: {path: /data/2026-03/bt.db}

Behaviour
---------
- Listing and search never open a run: the runs container asks SQL for uids
  (:func:`.records.list_uids`) and builds a run's node only when a page of
  the listing or a request names it. tiled queries become a
  :class:`.records.RunQuery` through this container's own query registry.
- A frame block (one frame per block) reads only its own frames.
- Fresh within ``ttl`` seconds: the uid listing and the nodes of runs still
  open are re-read when older than ``ttl`` (default 1 s), so runs written by
  the beamline appear, and open runs grow, without restarting the server.
  Nodes of closed runs do not change and stay cached (a few, LRU).
- The ``.db`` is checked (``stat``) on every request: a file replaced under
  the same name (rsync lands a new inode) is reopened and the caches dropped;
  a deleted one answers 404 with our message.
- Every :class:`.errors.BeamtimeError` reaches the client as an HTTP error
  whose detail is our one-line message (404 for what does not exist, 422 for
  a file or row that is broken), never as a server traceback.

The module imports tiled; it is only imported when used (``pip install
'intake-resonance[tiled]'``).
"""

from __future__ import annotations

import builtins
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from fastapi import HTTPException
from tiled.adapters.array import ArrayAdapter
from tiled.adapters.mapping import MapAdapter
from tiled.adapters.xarray import DatasetAdapter
from tiled.iterviews import ItemsView, KeysView, ValuesView
from tiled.ndslice import NDBlock
from tiled.queries import Comparison, Contains, Eq, FullText, In, KeysFilter, QueryValueError
from tiled.query_registration import QueryTranslationRegistry
from tiled.server.schemas import SortingDirection, SortingItem
from tiled.structures.array import ArrayStructure, BuiltinDtype
from tiled.structures.core import Spec, StructureFamily

from . import records
from .dataset import netcdf_safe, open_run_dataset, run_attrs
from .errors import BeamtimeDataError, BeamtimeError, BeamtimeNotFoundError, RunNotFoundError
from .format import Database
from .frames import FrameStack

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_TTL",
    "BeamtimeAdapter",
    "FolderAdapter",
    "FrameArrayAdapter",
    "beamtime_tree",
    "build_server",
    "folder_tree",
]

#: Seconds a uid listing, a folder listing or an open run's node is reused.
DEFAULT_TTL = 1.0
#: Stream datasets kept built (their scalar columns are in memory).
DEFAULT_CACHE_SIZE = 8

_NOT_FOUND = 404
_BROKEN = 422  # the request is fine, the file or row it names is not (4xx: clients show the detail)


# ---------------------------------------------------------------------- errors
def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _http_error(exc: BeamtimeError) -> HTTPException:
    status = _NOT_FOUND if isinstance(exc, (RunNotFoundError, BeamtimeNotFoundError)) else _BROKEN
    return HTTPException(status_code=status, detail=_one_line(exc))


@contextmanager
def _served() -> Iterator[None]:
    """Turn our errors into HTTP errors carrying the one-line message."""
    try:
        yield
    except BeamtimeError as exc:
        raise _http_error(exc) from exc


def _bad_request(message: str) -> HTTPException:
    return HTTPException(status_code=400, detail=message)


# ------------------------------------------------------------- shared state
class _Beamtime:
    """One served ``.db``: its handle, a short-lived uid listing and the built nodes.

    Thread-safe: tiled resolves paths on its event loop and reads in worker
    threads.
    """

    def __init__(self, path: str | os.PathLike[str], ttl: float, cache_size: int) -> None:
        self.path = Path(path).expanduser().absolute()
        self.ttl = float(ttl)
        self.cache_size = max(1, int(cache_size))
        self._lock = threading.RLock()
        self._db: Database | None = None
        self._identity: tuple[int, int] | None = None
        self._listings: dict[tuple[Any, ...], tuple[float, list[str]]] = {}
        self._runs: OrderedDict[str, tuple[float, bool, MapAdapter]] = OrderedDict()
        self._streams: OrderedDict[tuple[str, str], tuple[float, bool, DatasetAdapter]] = OrderedDict()

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
    def uids(self, view: _View) -> list[str]:
        """Uids of the runs a view selects, oldest first (reused for ``ttl`` seconds)."""
        db = self.db()
        key = view.cache_key()
        with self._lock:
            hit = self._listings.get(key)
            if hit is not None and self._fresh(hit[0], False):
                return hit[1]
        if not view.filters and view.keys is None:
            uids = records.list_uids(db, view.query)
        else:
            # Criteria SQL cannot express (list membership in run metadata, a
            # uid list) narrow the rows of the runs table; no run is opened.
            uids = [r.uid for r in records.list_runs(db, view.query) if view.accepts(db, r)]
        with self._lock:
            if len(self._listings) > 64:
                self._listings.clear()
            self._listings[key] = (time.monotonic(), uids)
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
        node = MapAdapter(_StreamMap(self, uid, streams), metadata=_run_metadata(db, run, streams))
        with self._lock:
            self._runs[uid] = (time.monotonic(), run.time_stop is not None, node)
            while len(self._runs) > 64 * self.cache_size:
                self._runs.popitem(last=False)
        return node

    def stream_node(self, uid: str, stream: str) -> DatasetAdapter:
        """A stream of a run as tiled's xarray dataset."""
        db = self.db()
        key = (uid, stream)
        with self._lock:
            hit = self._streams.get(key)
            if hit is not None and self._fresh(hit[0], hit[1]):
                self._streams.move_to_end(key)
                return hit[2]
        run = records.get_run(db, uid)
        if run is None:
            raise RunNotFoundError("no run has this uid", db.path, run=uid)
        node = _stream_dataset(db, uid, stream)
        with self._lock:
            self._streams[key] = (time.monotonic(), run.time_stop is not None, node)
            while len(self._streams) > self.cache_size:
                self._streams.popitem(last=False)
        return node


# --------------------------------------------------------------------- streams
def _variable_adapter(name: str, var: Any, spec: str) -> ArrayAdapter:
    """A scalar column (or a lazy all-NaN frame variable) as a tiled array."""
    data = var.data
    if getattr(data, "dtype", None) == np.dtype(object):
        # tiled serves no object arrays: strings with gaps (None -> "") and
        # mixed values (as JSON text) become fixed-width text.
        data = np.array([v if isinstance(v, str) else "" if v is None else orjson.dumps(v).decode() for v in data])
    return ArrayAdapter.from_array(data, dims=tuple(var.dims), metadata={"attrs": dict(var.attrs)}, specs=[Spec(spec)])


class FrameArrayAdapter(ArrayAdapter):
    """An image field's frames as a tiled array, one frame per block.

    Every read goes through the field's :class:`~intake_resonance.frames.FrameStack`,
    which reads only the frames asked for.
    """

    def __init__(self, stack: FrameStack, dims: tuple[str, ...], attrs: dict[str, Any]) -> None:
        n, x, y = stack.shape
        structure = ArrayStructure(
            data_type=BuiltinDtype.from_numpy_dtype(np.dtype(stack.dtype)),
            shape=stack.shape,
            chunks=((1,) * n if n else (0,), (x,), (y,)),
            dims=dims,
        )
        super().__init__(stack, structure, metadata={"attrs": attrs}, specs=[Spec("xarray_data_var")])
        self.stack = stack

    def read(self, slice: Any = None) -> np.ndarray:  # noqa: A002 - tiled passes it by this name
        """Frames (or a part of them) selected by ``slice``, as a NumPy array."""
        key = tuple(slice) if slice else (builtins.slice(None),)
        self._check_size(key)
        with _served():
            return np.asarray(self.stack[key])

    def read_block(self, block: Any, slice: Any = None) -> np.ndarray:  # noqa: A002
        """One block (one frame), optionally sliced within it."""
        whole = NDBlock(*block).slice_from_chunks(self.structure().chunks)
        frames = self.read(whole)
        return frames[tuple(slice)] if slice else frames

    def _check_size(self, key: tuple[Any, ...]) -> None:
        # tiled refuses an answer beyond its size limit only after reading it;
        # refuse before reading hundreds of frames for nothing.
        from tiled.server.settings import get_settings

        shape = np.broadcast_to(np.empty((), dtype=bool), self.stack.shape)[key].shape
        nbytes = math.prod(shape) * np.dtype(self.stack.dtype).itemsize
        limit = get_settings().response_bytesize_limit
        if nbytes > limit:
            raise _bad_request(
                f"Response would exceed {limit} bytes ({nbytes}); read the frames block by block or slice them"
            )


def _image_fields(db: Database, uid: str, stream: str) -> list[str]:
    declared = [
        name
        for s in records.list_streams(db, uid)
        if s.name == stream
        for name, d in s.data_keys.items()
        if isinstance(d, dict) and d.get("external")
    ]
    return list(dict.fromkeys([*declared, *records.image_fields(db, uid, stream)]))


def _stream_dataset(db: Database, uid: str, stream: str, attempts: int = 3) -> DatasetAdapter:
    """Build a stream's dataset node: scalars from the one builder, frames from the frame layer."""
    for _ in range(attempts):
        refs = {f: records.frame_refs(db, uid, f, stream) for f in _image_fields(db, uid, stream)}
        refs = {f: r for f, r in refs.items() if r.frame_shape is not None}
        # Fields with frames are served by FrameStack; the builder makes the rest
        # (including the all-NaN variable of a declared field that has no frame).
        ds = open_run_dataset(db, uid, stream, drop_variables=list(refs))
        try:
            seq_num = ds["seq_num"].values
            if not all(np.array_equal(r.seq_num, seq_num) for r in refs.values()):
                continue  # a commit landed between the two reads: read again
            contents: dict[str, ArrayAdapter] = {}
            for name, var in ds.data_vars.items():
                contents[str(name)] = _variable_adapter(str(name), var, "xarray_data_var")
            for field, r in refs.items():
                descriptor = _descriptor(db, uid, stream, field)
                attrs = {str(k): netcdf_safe(v) for k, v in descriptor.items() if v is not None}
                stack = FrameStack(db.zarr_path, r, db.path, run=uid, stream=stream, field=field)
                contents[field] = FrameArrayAdapter(stack, ("time", f"{field}_x", f"{field}_y"), attrs)
            for name, var in ds.coords.items():
                contents[str(name)] = _variable_adapter(str(name), var, "xarray_coord")
            attrs = dict(ds.attrs)
        finally:
            ds.close()
        return DatasetAdapter(contents, metadata={"attrs": attrs}, specs=[Spec("xarray_dataset")])
    raise BeamtimeDataError("the run kept changing while it was read; try again", db.path, run=uid, stream=stream)


def _descriptor(db: Database, uid: str, stream: str, field: str) -> dict[str, Any]:
    for s in records.list_streams(db, uid):
        if s.name == stream:
            d = s.data_keys.get(field)
            return d if isinstance(d, dict) else {}
    return {}


class _StreamMap(Mapping[str, DatasetAdapter]):
    """A run's streams, each built when first asked for."""

    def __init__(self, source: _Beamtime, uid: str, streams: list[str]) -> None:
        self._source, self._uid, self._streams = source, uid, streams

    def __getitem__(self, name: str) -> DatasetAdapter:
        if name not in self._streams:
            raise KeyError(name)
        with _served():
            return self._source.stream_node(self._uid, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._streams)

    def __len__(self) -> int:
        return len(self._streams)


def _run_metadata(db: Database, run: records.RunRecord, streams: list[str]) -> dict[str, Any]:
    """A run node's metadata: the run row, Bluesky-like start/stop documents, sample, attrs."""
    sample = records.get_sample(db, run.sample_id)
    user = run.metadata(db)
    start = {**user, "uid": run.uid, "time": run.time_start, "plan_name": run.plan_name}
    for key, value in (("operator", run.operator), ("sample_name", run.sample_name)):
        if value is not None:
            start[key] = value
    stop = None
    if run.time_stop is not None:
        stop = {"run_start": run.uid, "time": run.time_stop, "exit_status": run.exit_status, "num_events": run.num_events}
    return {
        "uid": run.uid,
        "plan_name": run.plan_name,
        "sample_name": run.sample_name,
        "operator": run.operator,
        "time_start": run.time_start,
        "time_stop": run.time_stop,
        "exit_status": run.exit_status,
        "num_events": run.num_events,
        "streams": streams,
        "sample": None if sample is None else {
            "name": sample.name, "formula": sample.formula, "serial": sample.serial, "tags": sample.tags,
            "beamline_pos": sample.beamline_pos, "extra": sample.extra,
        },
        "metadata": user,
        "start": start,
        "stop": stop,
        "attrs": run_attrs(db, run),
    }


# ---------------------------------------------------------------------- search
#: Query keys answered by a runs-table column, as RunQuery names them.
_COLUMNS = {
    "plan_name": "plan_name",
    "start.plan_name": "plan_name",
    "sample_name": "sample",
    "sample": "sample",
    "sample.name": "sample",
    "start.sample_name": "sample",
    "exit_status": "exit_status",
    "stop.exit_status": "exit_status",
    "operator": "operator",
    "start.operator": "operator",
}
_TIMES = ("time_start", "start.time")
#: Keys of a run node's metadata that no search reaches.
_NOT_SEARCHABLE = ("uid", "start.uid", "time_stop", "num_events", "streams", "attrs", "start", "stop", "metadata")
_SEARCHABLE = "plan_name, sample_name, exit_status, operator, time_start, metadata.<key> (or start.<key>)"


def _metadata_key(key: str) -> str:
    """The run-metadata key a query key names; ValueError-family if none."""
    for prefix in ("metadata.", "start."):
        if key.startswith(prefix) and len(key) > len(prefix):
            return key[len(prefix):]
    if key in _NOT_SEARCHABLE or key.startswith(("stop.", "sample.", "attrs.")) or not key:
        raise QueryValueError(f"cannot search runs by {key!r}; searchable: {_SEARCHABLE}")
    return key


def _time(value: Any) -> float:
    try:
        return records.epoch_seconds(value)
    except (ValueError, TypeError) as exc:
        raise QueryValueError(f"time_start: {exc}") from exc


class _View:
    """What a runs container selects: SQL criteria, and the few criteria SQL cannot express."""

    def __init__(
        self,
        query: records.RunQuery | None = None,
        filters: tuple[tuple[str, str, str], ...] = (),
        keys: frozenset[str] | None = None,
        reverse: bool = False,
    ) -> None:
        self.query = query or records.RunQuery()
        self.filters = filters  # (op, metadata key, JSON value)
        self.keys = keys
        self.reverse = reverse

    def cache_key(self) -> tuple[Any, ...]:
        return (repr(self.query.criteria), self.filters, None if self.keys is None else tuple(sorted(self.keys)))

    def narrow(self, **criteria: Any) -> _View:
        try:
            query = self.query.narrow(**criteria)
        except (ValueError, TypeError) as exc:
            raise QueryValueError(str(exc)) from exc
        return _View(query, self.filters, self.keys, self.reverse)

    def accepts(self, db: Database, run: records.RunRecord) -> bool:
        if self.keys is not None and run.uid not in self.keys:
            return False
        if not self.filters:
            return True
        meta = run.metadata(db)
        for op, key, value_json in self.filters:
            value = orjson.loads(value_json)
            term = meta.get(key)
            if op == "in" and term not in value:
                return False
            if op == "contains" and not (isinstance(term, list) and value in term):
                return False
        return True


def _eq(query: Eq, tree: BeamtimeAdapter) -> BeamtimeAdapter:
    key, value = query.key, query.value
    if key in _COLUMNS:
        if isinstance(value, (list, dict)):
            raise QueryValueError(f"{key} takes one value; use In for several")
        return tree._narrowed(tree._view.narrow(**{_COLUMNS[key]: value}))
    if key in _TIMES:
        t = _time(value)
        return tree._narrowed(tree._view.narrow(since=t, until=math.nextafter(t, math.inf)))
    return tree._narrowed(tree._view.narrow(metadata={_metadata_key(key): value}))


def _in(query: In, tree: BeamtimeAdapter) -> BeamtimeAdapter:
    key, values = query.key, list(query.value)
    if key in _COLUMNS:
        if any(isinstance(v, (list, dict)) for v in values):
            raise QueryValueError(f"{key}: In takes a list of plain values")
        return tree._narrowed(tree._view.narrow(**{_COLUMNS[key]: values}))
    return tree._with_filter("in", _metadata_key(key), values)


def _contains(query: Contains, tree: BeamtimeAdapter) -> BeamtimeAdapter:
    if query.key in _COLUMNS or query.key in _TIMES:
        raise QueryValueError(f"Contains applies to list-valued run metadata, not to {query.key!r}; use Eq or FullText")
    return tree._with_filter("contains", _metadata_key(query.key), query.value)


def _comparison(query: Comparison, tree: BeamtimeAdapter) -> BeamtimeAdapter:
    if query.key not in _TIMES:
        raise QueryValueError(f"Comparison is supported on time_start only, not {query.key!r}")
    t = _time(query.value)
    op = getattr(query.operator, "value", query.operator)
    bounds = {
        "ge": {"since": t},
        "gt": {"since": math.nextafter(t, math.inf)},
        "lt": {"until": t},
        "le": {"until": math.nextafter(t, math.inf)},
    }
    if op not in bounds:
        raise QueryValueError(f"unknown comparison operator {op!r}")
    return tree._narrowed(tree._view.narrow(**bounds[op]))


def _full_text(query: FullText, tree: BeamtimeAdapter) -> BeamtimeAdapter:
    return tree._narrowed(tree._view.narrow(text=query.text))


def _keys_filter(query: KeysFilter, tree: BeamtimeAdapter) -> BeamtimeAdapter:
    keys = frozenset(query.keys)
    view = tree._view
    if view.keys is not None:
        keys &= view.keys
    return tree._narrowed(_View(view.query, view.filters, keys, view.reverse))


# ------------------------------------------------------------- runs container
class BeamtimeAdapter:
    """A beamtime as a tiled container of runs: oldest first, keyed by uid.

    Listing asks SQL for uids only; a run's node is built when a page of the
    listing or a request names it. Searches narrow a :class:`.records.RunQuery`.
    A run is also found by a unique uid prefix (6+ characters).

    Parameters
    ----------
    path : str or Path
        The beamtime's ``.db`` (its ``.zarr`` beside it).
    ttl : float
        Seconds a uid listing and an open run's node are reused (default 1).
    cache_size : int
        Stream datasets kept built.
    """

    structure_family = StructureFamily.container
    query_registry = QueryTranslationRegistry()
    register_query = query_registry.register
    specs: list[Spec] = []

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        ttl: float = DEFAULT_TTL,
        cache_size: int = DEFAULT_CACHE_SIZE,
        in_folder: bool = False,
        _source: _Beamtime | None = None,
        _view: _View | None = None,
    ) -> None:
        self._source = _source or _Beamtime(path, ttl, cache_size)
        self._view = _view or _View()
        self._in_folder = in_folder
        self.shutdown_tasks = [self._shutdown]

    async def _shutdown(self) -> None:
        self.close()

    def close(self) -> None:
        """Close the database (reopened by the next request)."""
        self._source.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {str(self._source.path)!r}>"

    # -- node protocol -------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """Name and file of the beamtime; ``error`` when it cannot be opened."""
        meta: dict[str, Any] = {"name": self._source.path.stem, "file": self._source.path.name}
        try:
            meta["schema_version"] = self._source.db().schema_version
        except BeamtimeError as exc:
            if not self._in_folder:
                raise _http_error(exc) from exc
            meta["error"] = _one_line(exc)
        return meta

    def structure(self) -> None:
        """None: the keys are served page by page."""
        return None

    @property
    def sorting(self) -> list[SortingItem]:
        """Oldest first (``"_"``); reversed with ``-_``."""
        direction = SortingDirection.DESCENDING if self._view.reverse else SortingDirection.ASCENDING
        return [SortingItem(key="_", direction=direction)]

    def _uids(self) -> list[str]:
        with _served():
            uids = self._source.uids(self._view)
        return uids[::-1] if self._view.reverse else uids

    def __len__(self) -> int:
        if self._in_folder:
            # A broken beamtime in a folder lists as empty (its metadata says why);
            # reading it gives the error.
            try:
                return len(self._source.uids(self._view))
            except BeamtimeError:
                return 0
        return len(self._uids())

    def __iter__(self) -> Iterator[str]:
        return iter(self._uids())

    def __contains__(self, key: object) -> bool:
        return key in self._uids()

    def __getitem__(self, key: str) -> MapAdapter:
        with _served():
            try:
                uid = records.resolve_uid(self._source.db(), key, self._view.query)
            except RunNotFoundError as exc:
                raise KeyError(key) from exc
            if self._view.filters or self._view.keys is not None:
                if uid not in self._source.uids(self._view):
                    raise KeyError(key)
            return self._source.run_node(uid)

    def keys(self) -> KeysView:
        """A sliceable view of the uids."""
        return KeysView(lambda: len(self), self._keys_slice)

    def values(self) -> ValuesView:
        """A sliceable view of the run nodes."""
        return ValuesView(lambda: len(self), self._items_slice)

    def items(self) -> ItemsView:
        """A sliceable view of ``(uid, run node)`` pairs."""
        return ItemsView(lambda: len(self), self._items_slice)

    def _keys_slice(self, start: int, stop: int | None, direction: int, page_size: int | None = None) -> list[str]:
        uids = self._uids()
        if direction < 0:
            uids = uids[::-1]
        return uids[start:stop]

    def _items_slice(
        self, start: int, stop: int | None, direction: int, page_size: int | None = None
    ) -> Iterator[tuple[str, MapAdapter]]:
        for uid in self._keys_slice(start, stop, direction):
            with _served():
                yield uid, self._source.run_node(uid)

    # -- search and sorting -----------------------------------------------------
    def search(self, query: Any) -> BeamtimeAdapter:
        """A narrower container; the query becomes SQL criteria (see the module notes)."""
        return self.query_registry(query, self)

    def sort(self, sorting: list[tuple[str, int]]) -> BeamtimeAdapter:
        """Runs are ordered by start time: ``_``/``time_start`` ascending or descending."""
        reverse = self._view.reverse
        for key, direction in sorting:
            if key not in ("_", "", *_TIMES):
                raise _bad_request(f"runs are sorted by start time only ('_' or 'time_start'), not {key!r}")
            reverse = int(direction) < 0
        view = self._view
        return self._narrowed(_View(view.query, view.filters, view.keys, reverse))

    def read(self, fields: Any = None) -> Any:
        """Refused: a whole beamtime is not one download; read a run's stream instead."""
        raise _bad_request("a whole beamtime is not served as one download; read a run's stream instead")

    def _narrowed(self, view: _View) -> BeamtimeAdapter:
        return type(self)(self._source.path, in_folder=self._in_folder, _source=self._source, _view=view)

    def _with_filter(self, op: str, key: str, value: Any) -> BeamtimeAdapter:
        view = self._view
        item = (op, key, orjson.dumps(value).decode())
        return self._narrowed(_View(view.query, (*view.filters, item), view.keys, view.reverse))


BeamtimeAdapter.register_query(Eq, _eq)
BeamtimeAdapter.register_query(In, _in)
BeamtimeAdapter.register_query(Contains, _contains)
BeamtimeAdapter.register_query(Comparison, _comparison)
BeamtimeAdapter.register_query(FullText, _full_text)
BeamtimeAdapter.register_query(KeysFilter, _keys_filter)


# ----------------------------------------------------------- folder container
class FolderAdapter:
    """A folder of beamtimes as a tiled container keyed by file stem (sorted).

    The ``*.db`` files directly in the folder; new files appear within
    ``ttl`` seconds. A beamtime that cannot be opened still lists (count 0,
    its one-line error under ``metadata["error"]``); reading it gives the
    HTTP error.
    """

    structure_family = StructureFamily.container
    specs: list[Spec] = []

    def __init__(self, folder: str | os.PathLike[str], *, ttl: float = DEFAULT_TTL, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self.folder = Path(folder).expanduser().absolute()
        if not self.folder.is_dir():
            raise BeamtimeNotFoundError("folder of beamtimes does not exist", self.folder)
        self.ttl = float(ttl)
        self.cache_size = cache_size
        self._lock = threading.Lock()
        self._listed: tuple[float, list[str]] | None = None
        self._children: dict[str, BeamtimeAdapter] = {}
        self.shutdown_tasks = [self._shutdown]

    async def _shutdown(self) -> None:
        self.close()

    def close(self) -> None:
        """Close every beamtime's database."""
        with self._lock:
            for child in self._children.values():
                child.close()

    def metadata(self) -> dict[str, Any]:
        """The folder's name."""
        return {"name": self.folder.name}

    def structure(self) -> None:
        """None: the keys are listed on request."""
        return None

    @property
    def sorting(self) -> list[SortingItem]:
        """By file stem."""
        return [SortingItem(key="_", direction=SortingDirection.ASCENDING)]

    def _names(self) -> list[str]:
        with self._lock:
            if self._listed is not None and time.monotonic() - self._listed[0] < self.ttl:
                return self._listed[1]
        if not self.folder.is_dir():
            raise _http_error(BeamtimeNotFoundError("folder of beamtimes does not exist", self.folder))
        names = sorted(p.stem for p in self.folder.glob("*.db") if p.is_file())
        with self._lock:
            self._listed = (time.monotonic(), names)
        return names

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __getitem__(self, name: str) -> BeamtimeAdapter:
        if name not in self._names() and not (self.folder / f"{name}.db").is_file():
            raise KeyError(name)
        with self._lock:
            child = self._children.get(name)
            if child is None:
                child = self._children[name] = BeamtimeAdapter(
                    self.folder / f"{name}.db", ttl=self.ttl, cache_size=self.cache_size, in_folder=True
                )
        return child

    def keys(self) -> KeysView:
        """A sliceable view of the beamtime names."""
        return KeysView(lambda: len(self), self._keys_slice)

    def values(self) -> ValuesView:
        """A sliceable view of the beamtime nodes."""
        return ValuesView(lambda: len(self), self._items_slice)

    def items(self) -> ItemsView:
        """A sliceable view of ``(name, beamtime node)`` pairs."""
        return ItemsView(lambda: len(self), self._items_slice)

    def _keys_slice(self, start: int, stop: int | None, direction: int, page_size: int | None = None) -> list[str]:
        names = self._names()
        return (names if direction > 0 else names[::-1])[start:stop]

    def _items_slice(
        self, start: int, stop: int | None, direction: int, page_size: int | None = None
    ) -> Iterator[tuple[str, BeamtimeAdapter]]:
        for name in self._keys_slice(start, stop, direction):
            yield name, self[name]

    def read(self, fields: Any = None) -> Any:
        """Refused: a folder of beamtimes is not one download."""
        raise _bad_request("a folder of beamtimes is not served as one download; read a run's stream instead")


# ------------------------------------------------------------------ entry points
def beamtime_tree(path: str | os.PathLike[str], ttl: float = DEFAULT_TTL, cache_size: int = DEFAULT_CACHE_SIZE) -> BeamtimeAdapter:
    """The tiled tree of one beamtime (for ``tiled serve config`` or ``build_app``).

    Parameters
    ----------
    path : str or Path
        The beamtime's ``.db``.
    ttl : float
        Seconds within which new runs appear (default 1).
    cache_size : int
        Stream datasets kept built.

    Raises
    ------
    BeamtimeError
        The file does not exist or is not a beamtime (checked once at start).
    """
    tree = BeamtimeAdapter(path, ttl=ttl, cache_size=cache_size)
    tree._source.db()  # refuse a missing or broken file before serving it
    return tree


def folder_tree(folder: str | os.PathLike[str], ttl: float = DEFAULT_TTL, cache_size: int = DEFAULT_CACHE_SIZE) -> FolderAdapter:
    """The tiled tree of a folder of beamtimes, keyed by file stem.

    Parameters
    ----------
    folder : str or Path
        The folder holding ``NAME.db`` + ``NAME.zarr`` pairs.
    ttl : float
        Seconds within which new files and runs appear (default 1).
    cache_size : int
        Stream datasets kept built per beamtime.
    """
    return FolderAdapter(folder, ttl=ttl, cache_size=cache_size)



# ---------------------------------------------------------------------- serving
#: tiled's own environment variable for the single-user API key.
API_KEY_ENV = "TILED_SINGLE_USER_API_KEY"


def build_server(
    path: str | os.PathLike[str], *, api_key: str | None = None, public: bool = False, ttl: float = DEFAULT_TTL
) -> tuple[Any, str, str]:
    """A tiled web app serving a beamtime ``.db`` or a folder of them.

    Parameters
    ----------
    path : str or Path
        A beamtime's ``.db``, or a folder of beamtimes.
    api_key : str, optional
        The key clients present; default: tiled's environment variable
        ``TILED_SINGLE_USER_API_KEY``, else a new random key.
    public : bool
        Let anyone who can connect read without a key.
    ttl : float
        Seconds within which new runs (and files) appear.

    Returns
    -------
    app : fastapi.FastAPI
        Run it with any ASGI server (``uvicorn.run(app, host=..., port=...)``).
    api_key : str
    key_source : str
        ``"option"``, ``"environment"`` or ``"generated"``.

    Raises
    ------
    BeamtimeError
        A missing or broken ``.db``, or a folder that does not exist.
    ValueError
        An API key with characters other than letters and digits (tiled's rule).
    """
    import secrets

    from tiled.config import Authentication
    from tiled.server.app import build_app

    if api_key:
        source = "option"
    elif os.environ.get(API_KEY_ENV):
        api_key, source = os.environ[API_KEY_ENV], "environment"
    else:
        api_key, source = secrets.token_hex(32), "generated"
    if not api_key.isalnum():
        raise ValueError("the API key must hold only letters and digits (it travels in URLs as ?api_key=...)")
    target = Path(path).expanduser()
    tree: Any = folder_tree(target, ttl=ttl) if target.is_dir() else beamtime_tree(target, ttl=ttl)
    app = build_app(tree, Authentication(single_user_api_key=api_key, allow_anonymous_access=public))
    return app, api_key, source
