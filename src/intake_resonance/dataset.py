"""One run and one stream as an :class:`xarray.Dataset`: the one builder every face uses.

Every way in (intake, the ``resonance`` engine, DataTrees, stacking, the
command line, tiled, intake 2) ends in :func:`open_run_dataset`, which opens
the run through xarray's own ``open_dataset`` machinery with our engine.
The engine calls :func:`build_run_dataset`, so a run opened through any face
has the same variables, attributes, chunks and dask names.

Layout (see the design notes): a ``time`` dimension with one row per event in
``seq_num`` order, coordinates ``time`` (datetime64[ns], UTC) and ``seq_num``;
one variable per scalar field; one lazy variable per image field with dims
``(time, <field>_x, <field>_y)``. Attributes are netCDF-safe.

Typing rules for scalar fields, applied to the values present (a missing
field and a JSON ``null`` are treated alike):

- all integers -> int64; with gaps -> float64 with NaN;
- any float (or ints and floats) -> float64, gaps NaN;
- all booleans -> bool; with gaps -> float64 (1.0 / 0.0 / NaN);
- strings -> str; with gaps -> object (xarray shows the gaps as NaN);
- equal-length lists -> a 2-D variable ``(time, <field>_dim_0)``;
- anything else (mixed kinds, ragged lists) -> object, values as stored.

A field's variable is named after it, unless the name is unsafe or taken
(``time``, ``seq_num``, a frame dimension, ``/``, NUL, empty): then
:func:`~intake_resonance.names.variable_names` gives it a safe, unique name
and its ``field_name`` attribute keeps the name as stored.

A declared field that no event carries gets no variable. A declared image
field without any frame keeps its variable (all NaN) when its descriptor
gives a 2-D ``shape``.

Dask names
----------
Frame variables are chunked by xarray, which names them from a token of what
was opened. :func:`open_run_dataset` opens a :class:`RunLocation` whose token
is the resolved ``.db`` path, the run, the stream and a digest of the frame
references that were read, so the names are the same through every face and
change as soon as a live run gains events (the ``.db`` modification time is
not enough: a commit in WAL mode leaves it alone). A direct
``xr.open_dataset("bt.db", engine="resonance", chunks=...)`` is named by
xarray's own rule for paths (path and modification time).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import dask
import dask.array
import numpy as np
import orjson
import xarray as xr
from dask.base import tokenize
from dask.utils import parse_bytes
from xarray.backends import BackendArray
from xarray.core import indexing

from . import records
from .errors import RunNotFoundError
from .format import Database
from .frames import FrameStack
from .names import image_dims, renamed_attrs, variable_names

__all__ = [
    "FrameArray",
    "RunLocation",
    "build_run",
    "build_run_dataset",
    "frame_chunks",
    "netcdf_safe",
    "open_database",
    "open_run_dataset",
    "open_run_datasets",
    "open_run_tree",
    "run_attrs",
    "run_groups",
    "run_layout",
    "stream_names",
]


# --------------------------------------------------------------------- helpers
def netcdf_safe(value: Any) -> Any:
    """Return ``value`` as something netCDF and Zarr accept as an attribute.

    Strings and numbers pass; booleans become 0/1; lists of strings or of
    numbers pass as lists; anything else (dicts, mixed lists, None inside)
    becomes JSON text.
    """
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
        return str(value)  # no file format stores a wider integer
    if isinstance(value, (str, int, float, np.integer, np.floating)):
        return value
    if isinstance(value, (list, tuple)) and value:
        if all(isinstance(v, str) for v in value):
            return list(value)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) and _fits(v) for v in value):
            return list(value)
    try:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    except TypeError:  # an integer wider than 64 bits somewhere inside
        return json.dumps(value, default=str)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _fits(number: int | float) -> bool:
    return not isinstance(number, int) or _INT64_MIN <= number <= _INT64_MAX


def _safe_attrs(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    # NULL values are left out: netCDF has no None, and absence reads the same.
    return {str(k): netcdf_safe(v) for k, v in items if v is not None}


def _iso(t: float | None) -> str | None:
    return records.iso_utc(t)


def frame_chunks(n: int, frame_shape: tuple[int, int], dtype: Any, chunks: Any = None) -> tuple[int, int, int]:
    """Regular chunk sizes ``(frames, x, y)`` for an ``(n, x, y)`` frame array.

    Parameters
    ----------
    n : int
        Number of frames.
    frame_shape : (int, int)
        Shape of one frame.
    dtype : dtype
        The frames' dtype.
    chunks : None, int, tuple, dict or "auto"
        None (default): whole frames grouped so a chunk holds about dask's
        ``array.chunk-size``; an int: frames per chunk; a tuple of three sizes
        (``-1`` or None for a whole axis); a dict by axis position or by
        dimension name (``time``, ``<field>_x``, ``<field>_y``); ``"auto"``:
        dask's own choice, whole frames kept together.

    Returns
    -------
    tuple of int
        One size per axis; every chunk but the last has it, which
        ``Dataset.to_zarr`` needs.
    """
    shape = (n, *frame_shape)
    if chunks is None:
        target = parse_bytes(dask.config.get("array.chunk-size"))
        per_frame = max(1, int(np.prod(frame_shape)) * np.dtype(dtype).itemsize)
        chunks = max(1, target // per_frame)
    if isinstance(chunks, (int, np.integer)) and not isinstance(chunks, bool):
        chunks = (int(chunks), -1, -1)
    elif isinstance(chunks, dict):
        by_pos: list[Any] = [-1, -1, -1]
        for key, size in chunks.items():
            pos = key if isinstance(key, int) else _axis_of(str(key))
            if pos is not None and 0 <= pos < 3:
                by_pos[pos] = size
        chunks = tuple(by_pos)
    elif chunks == "auto":
        chunks = ("auto", -1, -1)
    if not isinstance(chunks, tuple) or len(chunks) != 3:
        raise ValueError(f"frame chunks must be None, an int, a 3-tuple, a dict or 'auto', not {chunks!r}")
    # Sizes <= 0 or None mean a whole axis; one frame per Zarr chunk is the storage unit.
    spec = tuple(s if s == "auto" else (-1 if s is None or int(s) <= 0 else min(int(s), max(d, 1)))
                 for s, d in zip(chunks, shape))
    normal = dask.array.core.normalize_chunks(spec, shape=shape, dtype=np.dtype(dtype), previous_chunks=(1, *frame_shape))
    return tuple(c[0] if c else 0 for c in normal)  # type: ignore[return-value]


def _axis_of(dim: str) -> int | None:
    if dim == "time":
        return 0
    if dim.endswith("_x"):
        return 1
    if dim.endswith("_y"):
        return 2
    return None


def _resolve_stream(db: Database, run: records.RunRecord, stream: str) -> records.StreamRecord | None:
    streams = records.list_streams(db, run.uid)
    for s in streams:
        if s.name == stream:
            return s
    if run.time_stop is None:
        return None  # a live run may not have opened this stream yet
    names = ", ".join(repr(s.name) for s in streams) or "none"
    raise RunNotFoundError(f"run has no stream {stream!r} (streams: {names})", db.path, run=run.uid, stream=stream)


def run_attrs(db: Database, run: records.RunRecord) -> dict[str, Any]:
    """Dataset attributes of a run: the run row, its sample and its metadata.

    ``time_start``/``time_stop`` are ISO 8601 text in UTC; ``num_events``
    counts the committed events of all the run's streams (see
    :mod:`intake_resonance.records.summary`), so a run still being written
    shows its events so far.

    Metadata keys are added as they are, unless they clash with a run or
    sample attribute; then they get a ``metadata_`` prefix. NULL values are
    left out.
    """
    sample = records.get_sample(db, run.sample_id)
    items: list[tuple[str, Any]] = [
        ("uid", run.uid),
        ("plan_name", run.plan_name),
        ("time_start", _iso(run.time_start)),
        ("time_stop", _iso(run.time_stop)),
        ("exit_status", run.exit_status),
        # Committed events of all streams, an open run's too (records.summary defines the counts).
        ("num_events", records.run_counts(db, run.uid).num_events),
        ("operator", run.operator),
        ("sample_name", run.sample_name),
        ("beamtime", str(db.path)),
    ]
    if sample is not None:
        items += [
            ("sample_id", sample.id),
            ("sample_formula", sample.formula),
            ("sample_serial", sample.serial),
            ("sample_tags", sample.tags or None),
            ("sample_beamline_pos", sample.beamline_pos),
            ("sample_extra", sample.extra or None),
        ]
    attrs = _safe_attrs(items)
    taken = {k for k, _ in items} | {"stream"}
    for key, value in run.metadata(db).items():
        name = f"metadata_{key}" if key in taken else str(key)
        attrs.update(_safe_attrs([(name, value)]))
    return attrs


def run_layout(db: Database, uid: str, stream: str = "primary") -> dict[str, Any]:
    """What :func:`open_run_dataset` would hold, told without reading the event table.

    For intake's ``discover()`` and other listings: the run's attributes (as
    the Dataset's, with ``stream``), its dimension sizes and its variables'
    dimensions, from :func:`records.run_fields` (the descriptors, the first
    few events, the ``seq_num`` index and one frame reference per image
    field).

    Parameters
    ----------
    db : Database
    uid : str
        Full uid or a unique prefix of 6+ characters.
    stream : str

    Returns
    -------
    dict
        ``attrs`` (dict), ``dims`` (name -> size), ``data_vars`` (name -> list
        of dims) and ``coords`` (list of names).

    Notes
    -----
    A declared field that none of the run's events holds is listed here but
    gets no variable in the Dataset; telling them apart would mean reading
    every event.
    """
    run = records.get_run(db, records.resolve_uid(db, uid))
    assert run is not None  # resolve_uid only returns existing uids
    srec = _resolve_stream(db, run, stream)
    attrs = {**run_attrs(db, run), "stream": stream}
    found = [] if srec is None else [s for s in records.run_fields(db, run.uid) if s.name == stream]
    n = found[0].n_events if found else 0
    infos = found[0].fields if found else []
    image_names = _image_field_names(db, run.uid, srec, n)
    var_names = variable_names([f.name for f in infos if f.name not in image_names], image_names)
    dims: dict[str, int] = {"time": n}
    data_vars: dict[str, list[str]] = {}
    by_name = {f.name: f for f in infos}
    for f in infos:
        if f.name in image_names:
            continue
        var = var_names.get(f.name, f.name)
        if len(f.shape) == 1:
            dims[f"{var}_dim_0"] = f.shape[0]
            data_vars[var] = ["time", f"{var}_dim_0"]
        else:
            data_vars[var] = ["time"]
    for name in image_names:
        var = var_names[name]
        info = by_name.get(name)
        shape = info.shape if info is not None and len(info.shape) == 2 else _first_frame_shape(db, run.uid, name, stream)
        if shape is None:
            continue  # no frame and no usable shape: the Dataset has no variable either
        fx, fy = image_dims(var)
        dims[fx], dims[fy] = shape[0], shape[1]
        data_vars[var] = ["time", fx, fy]
    return {"attrs": attrs, "dims": dims, "data_vars": data_vars, "coords": ["time", "seq_num"]}


def _first_frame_shape(db: Database, run_uid: str, field: str, stream: str) -> tuple[int, ...] | None:
    # An image field the descriptors do not declare: the shape of one of its references.
    row = db.query(
        "SELECT ir.shape_x, ir.shape_y FROM image_refs ir JOIN events e ON e.uid = ir.event_uid "
        "JOIN streams s ON s.uid = e.stream_uid WHERE s.run_uid = ? AND s.name = ? AND ir.field_name = ? LIMIT 1",
        (run_uid, stream, field),
    )
    if row and all(isinstance(v, int) for v in row[0]):
        return (row[0][0], row[0][1])
    return None


class FrameArray(BackendArray):
    """xarray's lazy-array view of a :class:`FrameStack` (outer indexing)."""

    def __init__(self, stack: FrameStack) -> None:
        self.stack = stack
        self.shape = stack.shape
        self.dtype = stack.dtype

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER_1VECTOR, self.stack.__getitem__
        )


def _frame_variable(stack: FrameStack, dims: tuple[str, ...], attrs: dict[str, Any], chunks: Any) -> xr.Variable:
    # attrs describe the values whatever is computed from them (xarray keeps attrs through
    # reductions): detector counts, yes; the stored dtype, no (a mean is float). That dtype goes
    # where xarray keeps a source's dtype, in encoding, and only while the variable has it.
    attrs = {k: v for k, v in attrs.items() if k != "dtype"}
    attrs.setdefault("units", "counts")
    var = xr.Variable(dims, indexing.LazilyIndexedArray(FrameArray(stack)), attrs)
    # xarray chunks by these when opened with chunks={} (what every face does).
    var.encoding["preferred_chunks"] = dict(zip(dims, frame_chunks(stack.shape[0], stack.frame_shape, stack.dtype, chunks)))
    if stack.refs.dtype is not None and np.dtype(stack.refs.dtype) == stack.dtype:
        var.encoding["dtype"] = stack.dtype  # frames as stored; masked (float) frames get none
    return var


def _field_attrs(keys: dict[str, Any], field: str, var: str) -> dict[str, Any]:
    # A renamed field keeps its name as stored (names.py).
    return {**_safe_attrs(keys.get(field, {}).items()), **renamed_attrs(field, var)}


def _image_field_names(db: Database, run_uid: str, stream: records.StreamRecord | None, n_events: int) -> list[str]:
    declared = [] if stream is None else [k for k, d in stream.data_keys.items() if d.get("external")]
    found = [] if stream is None else records.image_fields(db, run_uid, stream.name, n_events=n_events)
    return list(dict.fromkeys([*declared, *found]))


def _empty_refs(seq_num: np.ndarray, shape: tuple[int, int]) -> records.FrameRefs:
    # A declared image field with no frame yet: every slot masked, nothing to read.
    none = np.full(len(seq_num), -1, dtype=np.int64)
    return records.FrameRefs(seq_num, (), none, none.copy(), shape, "float64")


_OPTIMISTIC_ATTEMPTS = 3


class _ChangedWhileReading(Exception):
    """A commit landed between two queries of one Dataset build."""


def build_run_dataset(
    db: Database,
    uid: str,
    stream: str = "primary",
    *,
    drop_variables: Iterable[Hashable] | None = None,
    chunks: Any = None,
) -> xr.Dataset:
    """Build one stream of one run as a lazy Dataset (what the engine returns to xarray).

    Frame variables wrap a :class:`FrameStack` in xarray's lazy indexing
    (nothing is read here) and carry ``preferred_chunks`` in their encoding
    from :func:`frame_chunks` with ``chunks``. Scalar columns are in memory.
    Faces should call :func:`open_run_dataset` instead.

    No lock is held across the queries, so a live beamline writer never
    waits while events decode; a commit landing between the events and the
    frame references is noticed (their seq_nums differ) and the read is
    repeated, inside one read transaction as a last resort.
    """
    return build_run(db, uid, stream, drop_variables=drop_variables, chunks=chunks)[0]


def build_run(
    db: Database, uid: str, stream: str = "primary", *, drop_variables: Iterable[Hashable] | None = None, chunks: Any = None
) -> tuple[xr.Dataset, list[FrameStack]]:
    """:func:`build_run_dataset`, also returning the frame readers behind its image variables."""
    for _ in range(_OPTIMISTIC_ATTEMPTS):
        try:
            return _build(db, uid, stream, drop_variables, chunks)
        except _ChangedWhileReading:
            continue
    with db.snapshot():
        return _build(db, uid, stream, drop_variables, chunks)


def _build(
    db: Database, uid: str, stream: str, drop_variables: Iterable[Hashable] | None, chunks: Any
) -> tuple[xr.Dataset, list[FrameStack]]:
    # Faces pass a resolved uid, found with one lookup; anything else is resolved first.
    run = records.get_run(db, uid)
    if run is None:
        run = records.get_run(db, records.resolve_uid(db, uid))
    assert run is not None  # resolve_uid only returns existing uids
    srec = _resolve_stream(db, run, stream)
    drop = {str(v) for v in (drop_variables or ())}

    ev = records.event_table(db, run.uid, stream, missing=None)  # column-wise, bounded memory
    n = len(ev)
    coords = {
        "time": ("time", (ev.time * 1e9).round().astype("datetime64[ns]"), {"timezone": "UTC"}),
        "seq_num": ("time", ev.seq_num),
    }
    keys = {} if srec is None else srec.data_keys
    image_names = _image_field_names(db, run.uid, srec, n)
    # Hostile field names (a coordinate's, '/', NUL, empty) get safe, unique names (names.py).
    var_names = variable_names([k for k in ev.columns if k not in image_names], image_names)
    data_vars: dict[str, Any] = {}
    for name, values in ev.columns.items():
        var = var_names.get(name, name)
        if name in drop or var in drop or name in image_names:
            continue
        arr, is_2d = records.column_array(values)
        dims: tuple[str, ...] = ("time", f"{var}_dim_0") if is_2d else ("time",)
        data_vars[var] = (dims, arr, _field_attrs(keys, name, var))
    stacks: list[FrameStack] = []
    for name in image_names:
        var = var_names[name]
        if name in drop or var in drop:
            continue
        refs = records.frame_refs(db, run.uid, name, stream)
        if not np.array_equal(refs.seq_num, ev.seq_num):
            raise _ChangedWhileReading
        if refs.frame_shape is None:
            shape = keys.get(name, {}).get("shape")
            if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(s, int) and s >= 0 for s in shape)):
                continue
            refs = _empty_refs(ev.seq_num, (shape[0], shape[1]))
        stack = FrameStack(db.zarr_path, refs, db.path, run=run.uid, stream=stream, field=name)
        stacks.append(stack)
        dims = ("time", *image_dims(var))
        data_vars[var] = _frame_variable(stack, dims, _field_attrs(keys, name, var), chunks)
    attrs = run_attrs(db, run)
    attrs["stream"] = stream
    ds = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    ds.set_close(_Closer(stacks))
    return ds, stacks


class _Closer:
    """``Dataset.close`` of a run: the frame readers let go of their open arrays."""

    def __init__(self, stacks: list[FrameStack]) -> None:
        self.stacks = stacks

    def __call__(self) -> None:
        for stack in self.stacks:
            stack.close()


# ---------------------------------------------------------------- the one way in
class RunLocation(os.PathLike):
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


def open_run_dataset(
    beamtime: Database | str | os.PathLike[str],
    uid: str,
    stream: str = "primary",
    *,
    chunks: Any = None,
    drop_variables: Iterable[Hashable] | str | None = None,
) -> xr.Dataset:
    """Open one stream of one run as an :class:`xarray.Dataset` with dask-backed frames.

    Parameters
    ----------
    beamtime : Database or path
        The beamtime's ``.db`` (opened read-only; a path is opened and closed
        here, a ``Database`` stays open and belongs to the caller).
    uid : str
        The run's uid or a unique prefix of 6+ characters.
    stream : str
        Stream name (default ``"primary"``).
    chunks : int, tuple, dict or "auto", optional
        Dask chunks of the image variables (see :func:`frame_chunks`);
        default: whole frames grouped to about ``dask.config["array.chunk-size"]``.
    drop_variables : str or iterable of str, optional
        Variables not to build (their frames are never touched).

    Returns
    -------
    xarray.Dataset
        Frames are not read: image variables are dask arrays. The Dataset
        holds no open connection; ``ds.close()`` lets its frame readers drop
        the Zarr arrays they opened.

    Raises
    ------
    RunNotFoundError
        Unknown or ambiguous uid, or a stream the (closed) run does not have.
    BeamtimeError
        Any broken row met while building (bad JSON names its seq_num).
    """
    from .xarray_backend import ResonanceBackendEntrypoint

    drop = _drop_names(drop_variables)
    with open_database(beamtime) as db:
        location = RunLocation(db, records.resolve_uid(db, uid), stream)
        ds = xr.open_dataset(location, engine=ResonanceBackendEntrypoint, cache=False, frame_chunks=chunks, drop_variables=drop)
    return _chunk_frames(ds, location)


def open_run_datasets(
    beamtime: Database | str | os.PathLike[str],
    uids: Iterable[str],
    stream: str = "primary",
    *,
    chunks: Any = None,
    drop_variables: Iterable[Hashable] | str | None = None,
) -> list[xr.Dataset]:
    """Several runs of one beamtime, each the Dataset :func:`open_run_dataset` gives.

    For stacking and other many-run reads: the beamtime is opened once and
    each run is built by the same engine call (:func:`build_run`) and
    finished the same way, without going through ``xr.open_dataset`` per run
    (whose bookkeeping costs as much as building a short run). Variables,
    attributes, ``encoding["source"]``, chunks and dask names are those of
    :func:`open_run_dataset`.

    Parameters
    ----------
    beamtime : Database or path
    uids : iterable of str
        Full uids or unique prefixes of 6+ characters.
    stream, chunks, drop_variables
        As :func:`open_run_dataset`.

    Returns
    -------
    list of xarray.Dataset
        In the order of ``uids``.
    """
    drop = _drop_names(drop_variables)
    out = []
    with open_database(beamtime) as db:
        for uid in uids:
            location = RunLocation(db, records.resolve_uid(db, uid), stream)
            ds, stacks = build_run(db, location.uid, stream, drop_variables=drop, chunks=chunks)
            location.revision = tokenize(*stacks)  # as the engine does
            out.append(_chunk_frames(_as_opened(ds, location), location))
    return out


def _drop_names(drop_variables: Iterable[Hashable] | str | None) -> list[str]:
    return [drop_variables] if isinstance(drop_variables, str) else [str(v) for v in drop_variables or ()]


def _as_opened(ds: xr.Dataset, location: RunLocation) -> xr.Dataset:
    # What xr.open_dataset adds to the engine's Dataset that outlives chunking:
    # the source path in encoding (its copy-on-write wrappers end up behind
    # dask or loaded either way).
    ds.encoding["source"] = os.path.abspath(location.path)
    return ds


def _chunk_frames(ds: xr.Dataset, location: RunLocation) -> xr.Dataset:
    # The engine's lazy arrays become dask arrays by each frame variable's
    # preferred_chunks (what xarray does with chunks={}), named from the
    # location's token; scalar columns, read already, stay NumPy. Done here
    # rather than by xarray's chunks={}, which would also wrap every scalar
    # column in dask only for us to compute it again.
    token = tokenize(location)
    for name, var in ds.variables.items():
        preferred = var.encoding.get("preferred_chunks")
        if preferred is None:
            var.load()
        else:
            sizes = {d: preferred[d] for d in var.dims}
            # inline_array: one task per chunk read, not a shared array key each read waits on.
            kwargs = {"name": f"resonance-{name}-{tokenize(token, sizes)}", "inline_array": True}
            var.data = var.chunk(sizes, from_array_kwargs=kwargs).data
    return ds


def open_run_tree(beamtime: Database | str | os.PathLike[str], uid: str, *, chunks: Any = None) -> xr.DataTree:
    """All streams of one run as a :class:`xarray.DataTree` (``/<stream>`` nodes, run attrs at the root).

    Each stream is opened by :func:`open_run_dataset`, so its variables and
    dask names equal a single stream's.
    """
    with open_database(beamtime) as db:
        return xr.DataTree.from_dict(run_groups(db, records.resolve_uid(db, uid), prefix="", opener=_dask_opener(chunks)))


def _dask_opener(chunks: Any) -> Opener:
    def opener(db: Database, uid: str, stream: str, drop_variables: Iterable[Hashable] | None) -> xr.Dataset:
        return open_run_dataset(db, uid, stream, chunks=chunks, drop_variables=drop_variables)

    return opener


Opener = Callable[[Database, str, str, Iterable[Hashable] | None], xr.Dataset]


def run_groups(
    db: Database,
    uid: str,
    *,
    opener: Opener | None = None,
    prefix: str | None = None,
    drop_variables: Iterable[Hashable] | None = None,
) -> dict[str, xr.Dataset]:
    """``{"<prefix>": run attrs, "<prefix>/<stream>": Dataset, ...}`` for one run.

    ``prefix`` defaults to ``/<uid>``; ``""`` makes the run the root.
    ``opener(db, uid, stream, drop_variables)`` builds each stream; the
    default is :func:`build_run_dataset` (lazy, for the engine).
    """
    run = records.get_run(db, uid)
    if run is None:
        raise RunNotFoundError("no run has this uid", db.path, run=uid)
    build: Opener = opener or (lambda d, u, s, v: build_run_dataset(d, u, s, drop_variables=v))
    base = f"/{uid}" if prefix is None else prefix
    out: dict[str, xr.Dataset] = {base or "/": xr.Dataset(attrs=run_attrs(db, run))}
    for s in records.list_streams(db, uid):
        out[f"{base}/{s.name}"] = build(db, uid, s.name, drop_variables)
    return out


def stream_names(db: Database, uid: str) -> list[str]:
    """Names of a run's streams in the order they were opened."""
    return [s.name for s in records.list_streams(db, uid)]
