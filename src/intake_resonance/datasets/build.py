"""The builder: one run and one stream as a lazy :class:`xarray.Dataset` (what the engine returns).

Frame variables wrap a :class:`~intake_resonance.beamtime.frames.FrameStack` in
xarray's lazy indexing and carry ``preferred_chunks`` (from
:func:`frame_chunks`) in their encoding; scalar columns are NumPy. Faces open
runs through :func:`intake_resonance.datasets.open.open_run_dataset` (or
:func:`~intake_resonance.datasets.many.open_many`), which call
:func:`build_run` and :func:`finish_run`; the ``resonance`` engine calls
:func:`build_run` too. The Dataset layout and typing rules are described
in :mod:`intake_resonance.datasets.open`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

import dask
import dask.array
import numpy as np
import xarray as xr
from dask.base import tokenize
from dask.utils import parse_bytes
from xarray.backends import BackendArray
from xarray.core import indexing  # the backend API xarray documents ("How to add a new backend")

from ..beamtime import records
from ..beamtime.errors import RunNotFoundError
from ..beamtime.format import Database
from ..beamtime.frames import FrameStack
from ..beamtime.names import image_dims, renamed_attrs, variable_names
from .attrs import is_scanned_axis, run_attrs, safe_attrs

__all__ = [
    "FrameArray", "build_run", "build_run_dataset", "event_times", "finish_run", "frame_chunks", "image_field_names",
    "resolve_stream",
]


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
    # dask documents normalize_chunks under dask.array.core (its API reference), not at dask.array
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


def resolve_stream(db: Database, run: records.RunRecord, stream: str) -> records.StreamRecord | None:
    """The run's stream named ``stream``; None for a live run that has not opened it yet.

    Raises
    ------
    RunNotFoundError
        A closed run without that stream (the message lists its streams).
    """
    streams = records.list_streams(db, run.uid)
    for s in streams:
        if s.name == stream:
            return s
    if run.time_stop is None:
        return None  # a live run may not have opened this stream yet
    names = ", ".join(repr(s.name) for s in streams) or "none"
    raise RunNotFoundError(f"run has no stream {stream!r} (streams: {names})", db.path, run=run.uid, stream=stream)


class FrameArray(BackendArray):
    """xarray's lazy-array view of a :class:`FrameStack` (outer indexing)."""

    def __init__(self, stack: FrameStack) -> None:
        self.stack = stack
        self.shape = stack.shape
        self.dtype = stack.dtype

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return np.asarray(
            indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.OUTER_1VECTOR, self.stack.__getitem__)
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
    return {**safe_attrs(keys.get(field, {}).items()), **renamed_attrs(field, var)}


def image_field_names(db: Database, run_uid: str, stream: records.StreamRecord | None, n_events: int) -> list[str]:
    """Image fields of a stream: declared ``external`` in its descriptors, or holding frames, in that order."""
    declared = [] if stream is None else [k for k, d in stream.data_keys.items() if d.get("external")]
    found = [] if stream is None else records.image_fields(db, run_uid, stream.name, n_events=n_events)
    return list(dict.fromkeys([*declared, *found]))


def _empty_refs(seq_num: np.ndarray, shape: tuple[int, int]) -> records.FrameRefs:
    # A declared image field with no frame yet: every slot masked, nothing to read.
    none = np.full(len(seq_num), -1, dtype=np.int64)
    return records.FrameRefs(seq_num, (), none, none.copy(), shape, "float64")


_OPTIMISTIC_ATTEMPTS = 3


def _plausible_side(size: Any) -> bool:
    # A field without frames gets an all-NaN placeholder of its descriptor's shape: a
    # crafted shape must not turn one read into an impossible allocation.
    return isinstance(size, int) and not isinstance(size, bool) and 0 <= size <= records.MAX_FRAME_SIDE


class _ChangedWhileReading(Exception):
    """A commit landed between two queries of one Dataset build."""


def event_times(seconds: np.ndarray) -> np.ndarray:
    """Events' epoch seconds as the ``time`` coordinate holds them: ``datetime64[ns]`` (UTC), rounded to the nanosecond."""
    return (np.asarray(seconds) * 1e9).round().astype("datetime64[ns]")


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
    db: Database,
    uid: str,
    stream: str = "primary",
    *,
    drop_variables: Iterable[Hashable] | None = None,
    chunks: Any = None,
    events: records.EventTable | None = None,
    attrs: dict[str, Any] | None = None,
) -> tuple[xr.Dataset, list[FrameStack]]:
    """:func:`build_run_dataset`, also returning the frame readers behind its image variables.

    ``events`` and ``attrs``, when given (a many-run read has them for all
    runs at once), stand for the run's event table and :func:`run_attrs`;
    they are read here if a commit landed since (the frame references no
    longer match the events).
    """
    if events is not None:
        try:
            return _build(db, uid, stream, drop_variables, chunks, events, attrs)
        except _ChangedWhileReading:
            pass
    for _ in range(_OPTIMISTIC_ATTEMPTS):
        try:
            return _build(db, uid, stream, drop_variables, chunks)
        except _ChangedWhileReading:
            continue
    with db.snapshot():
        return _build(db, uid, stream, drop_variables, chunks)


def _build(
    db: Database,
    uid: str,
    stream: str,
    drop_variables: Iterable[Hashable] | None,
    chunks: Any,
    events: records.EventTable | None = None,
    attrs: dict[str, Any] | None = None,
) -> tuple[xr.Dataset, list[FrameStack]]:
    # Faces pass a resolved uid, found with one lookup; anything else is resolved first.
    run = records.get_run(db, uid)
    if run is None:
        run = records.get_run(db, records.resolve_uid(db, uid))
    assert run is not None  # resolve_uid only returns existing uids
    srec = resolve_stream(db, run, stream)
    drop = {str(v) for v in (drop_variables or ())}

    ev = records.event_table(db, run.uid, stream, missing=None) if events is None else events  # column-wise, bounded memory
    n = len(ev)
    coords: dict[str, Any] = {
        "time": ("time", event_times(ev.time), {"timezone": "UTC"}),
        "seq_num": ("time", ev.seq_num),
    }
    keys = {} if srec is None else srec.data_keys
    image_names = image_field_names(db, run.uid, srec, n)
    # Hostile field names (a coordinate's, '/', NUL, empty) get safe, unique names (names.py).
    var_names = variable_names([k for k in ev.columns if k not in image_names], image_names)
    data_vars: dict[str, Any] = {}
    for name, values in ev.columns.items():
        var = var_names.get(name, name)
        if name in drop or var in drop or name in image_names:
            continue
        arr, is_2d = records.column_array(values)
        dims: tuple[str, ...] = ("time", f"{var}_dim_0") if is_2d else ("time",)
        # A motor is a scanned axis: a coordinate along time, kept through arithmetic and groupby.
        (coords if not is_2d and is_scanned_axis(keys.get(name)) else data_vars)[var] = (dims, arr, _field_attrs(keys, name, var))
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
            if not (isinstance(shape, list) and len(shape) == 2 and all(_plausible_side(s) for s in shape)):
                continue  # no frame and no usable shape: nothing to show
            refs = _empty_refs(ev.seq_num, (shape[0], shape[1]))
        stack = FrameStack(db.zarr_path, refs, db.path, run=run.uid, stream=stream, field=name, identity=db.identity)
        stacks.append(stack)
        dims = ("time", *image_dims(var))
        data_vars[var] = _frame_variable(stack, dims, _field_attrs(keys, name, var), chunks)
    attrs = run_attrs(db, run) if attrs is None else dict(attrs)
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


def finish_run(db: Database, uid: str, stream: str, ds: xr.Dataset, stacks: Iterable[FrameStack]) -> xr.Dataset:
    """What :func:`build_run` gives, as every face hands it out: frames as dask arrays, the source in encoding.

    The dask names follow what was read: the resolved ``.db`` path, the run,
    the stream and the frame references (so they change as soon as a live
    run gains events, and never by how the path was spelled). Scalar
    columns, read already, stay NumPy.
    """
    source = str(db.path.resolve())
    ds.encoding["source"] = source
    token = tokenize("resonance-run", source, uid, stream, *stacks)
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
