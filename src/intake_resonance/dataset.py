"""One run and one stream as an :class:`xarray.Dataset`.

Layout (see the design notes): a ``time`` dimension with one row per event in
``seq_num`` order, coordinates ``time`` (datetime64[ns], UTC) and ``seq_num``;
one variable per scalar field; one dask-backed variable per image field with
dims ``(time, <field>_x, <field>_y)``. Attributes are netCDF-safe.

Typing rules for scalar fields, applied to the values present (a missing
field and a JSON ``null`` are treated alike):

- all integers -> int64; with gaps -> float64 with NaN;
- any float (or ints and floats) -> float64, gaps NaN;
- all booleans -> bool; with gaps -> float64 (1.0 / 0.0 / NaN);
- strings -> str; with gaps -> object (xarray shows the gaps as NaN);
- equal-length lists -> a 2-D variable ``(time, <field>_dim_0)``;
- anything else (mixed kinds, ragged lists) -> object, values as stored.

A declared field that no event carries gets no variable. A declared image
field without any frame keeps its variable (all NaN) when its descriptor
gives a 2-D ``shape``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import orjson
import xarray as xr
from dask.base import tokenize
from dask.utils import parse_bytes
from pandas.api.types import infer_dtype

from . import records
from .errors import RunNotFoundError
from .format import Database
from .frames import FrameStack

__all__ = [
    "open_run_dataset",
    "open_run_tree",
    "run_attrs",
    "run_groups",
    "stream_names",
    "frame_chunks",
    "column_to_array",
    "netcdf_safe",
]

Wrap = Callable[[FrameStack, str, Any], Any]


# --------------------------------------------------------------------- helpers
def netcdf_safe(value: Any) -> Any:
    """Return ``value`` as something netCDF and Zarr accept as an attribute.

    Strings and numbers pass; booleans become 0/1; lists of strings or of
    numbers pass as lists; anything else (dicts, mixed lists, None inside)
    becomes JSON text.
    """
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (str, int, float, np.integer, np.floating)):
        return value
    if isinstance(value, (list, tuple)) and value:
        if all(isinstance(v, str) for v in value):
            return list(value)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return list(value)
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _safe_attrs(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    # NULL values are left out: netCDF has no None, and absence reads the same.
    return {str(k): netcdf_safe(v) for k, v in items if v is not None}


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, tz=UTC).isoformat()


def column_to_array(values: list[Any]) -> tuple[np.ndarray, bool]:
    """Convert one field's values (``None`` for gaps) by the module's typing rules.

    Returns
    -------
    array : ndarray
        1-D, or 2-D for equal-length lists.
    is_2d : bool
    """
    # One C-level pass over the types: all-float columns (most beamline
    # readings) need no inference, and gaps show as NoneType.
    types = set(map(type, values))
    if types == {float}:
        return np.array(values, dtype=np.float64), False
    kind = infer_dtype(values, skipna=True)
    has_gaps = kind == "empty" or type(None) in types
    if kind == "integer" and not has_gaps:
        try:
            return np.array(values, dtype=np.int64), False
        except OverflowError:
            return np.array(values, dtype=np.float64), False
    if kind in ("integer", "floating", "mixed-integer-float", "decimal", "empty"):
        return np.array(values, dtype=np.float64), False
    if kind == "boolean":
        if not has_gaps:
            return np.array(values, dtype=bool), False
        return np.array([np.nan if v is None else float(v) for v in values]), False
    if kind == "string":
        if not has_gaps:
            return np.array(values, dtype=str), False
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out, False
    lists = [v for v in values if v is not None]
    if lists and all(isinstance(v, list) for v in lists) and len({len(v) for v in lists}) == 1:
        width = len(lists[0])
        filled = [[None] * width if v is None else v for v in values]
        inner = column_to_array([x for row in filled for x in row])[0]
        if inner.dtype != object:
            return inner.reshape(len(values), width), True
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out, False


def frame_chunks(n: int, frame_shape: tuple[int, int], dtype: np.dtype, chunks: Any = None) -> Any:
    """Chunks for an ``(n, x, y)`` frame array.

    The default groups whole frames so a chunk holds about dask's
    ``array.chunk-size``; chunks are regular (all equal but the last), which
    ``Dataset.to_zarr`` needs. ``chunks`` may be an int (frames per chunk),
    a tuple, ``"auto"`` or a dict by dimension position or name.
    """
    if chunks is None:
        target = parse_bytes(dask.config.get("array.chunk-size"))
        per_frame = max(1, int(np.prod(frame_shape)) * np.dtype(dtype).itemsize)
        chunks = max(1, target // per_frame)
    if isinstance(chunks, (int, np.integer)):
        return (max(1, int(chunks)), *frame_shape)
    return chunks


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
        ("num_events", int(run.num_events or 0)),
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


def _dask_wrap(stack: FrameStack, name: str, chunks: Any) -> da.Array:
    chunks = frame_chunks(stack.shape[0], stack.frame_shape, stack.dtype, chunks)
    token = tokenize(stack, chunks)
    return da.from_array(
        stack,
        chunks=chunks,
        name=f"resonance-{name}-{token}",
        asarray=False,
        # fancy=True: FrameStack takes NumPy keys, and dask 2026.8 fuses a
        # slice of a chunk into the chunk's read only for the plain getter
        # (with getter_nofancy ds.x[k] would read k's whole ~32-frame chunk).
        fancy=True,
        lock=False,
        meta=np.empty((0, 0, 0), dtype=stack.dtype),
    )


# ---------------------------------------------------------------------- dataset
def _image_field_names(db: Database, run_uid: str, stream: records.StreamRecord | None, n_events: int) -> list[str]:
    declared = [] if stream is None else [k for k, d in stream.data_keys.items() if d.get("external")]
    found = [] if stream is None else records.image_fields(db, run_uid, stream.name, n_events=n_events)
    return list(dict.fromkeys([*declared, *found]))


def open_run_dataset(
    beamtime: Database | str | Path,
    uid: str,
    stream: str = "primary",
    *,
    chunks: Any = None,
    drop_variables: Iterable[Hashable] | None = None,
    wrap_frames: Wrap | None = None,
) -> xr.Dataset:
    """Open one stream of one run as an :class:`xarray.Dataset`.

    Parameters
    ----------
    beamtime : Database or path
        The beamtime's ``.db`` (opened read-only).
    uid : str
        The run's uid or a unique prefix of 6+ characters.
    stream : str
        Stream name (default ``"primary"``).
    chunks : int, tuple, dict or "auto", optional
        Dask chunks of the image variables; default: whole frames grouped to
        about ``dask.config["array.chunk-size"]``.
    drop_variables : iterable of str, optional
        Variables not to build (their frames are never touched).
    wrap_frames : callable, optional
        ``wrap(stack, name, chunks)`` turning a :class:`FrameStack` into the
        variable's data; the default makes a dask array. The xarray backend
        passes its own lazy wrapper.

    Returns
    -------
    xarray.Dataset
        Frames are not read: image variables are lazy.

    Raises
    ------
    RunNotFoundError
        Unknown or ambiguous uid, or a stream the (closed) run does not have.
    BeamtimeError
        Any broken row met while building (bad JSON names its seq_num).
    """
    db = beamtime if isinstance(beamtime, Database) else Database(beamtime)
    # No lock is held across the queries, so a live beamline writer never waits
    # while events decode; a commit landing between the events and the frame
    # references is noticed (their seq_nums differ) and the read is repeated.
    for _ in range(_OPTIMISTIC_ATTEMPTS):
        try:
            return _build_dataset(db, uid, stream, chunks, drop_variables, wrap_frames)
        except _ChangedWhileReading:
            continue
    # A writer committing faster than we read: one read transaction settles it.
    with db.snapshot():
        return _build_dataset(db, uid, stream, chunks, drop_variables, wrap_frames)


_OPTIMISTIC_ATTEMPTS = 3


class _ChangedWhileReading(Exception):
    """A commit landed between two queries of one Dataset build."""


def _build_dataset(
    db: Database, uid: str, stream: str, chunks: Any, drop_variables: Iterable[Hashable] | None, wrap_frames: Wrap | None
) -> xr.Dataset:
    run = records.get_run(db, records.resolve_uid(db, uid))
    assert run is not None  # resolve_uid only returns existing uids
    srec = _resolve_stream(db, run, stream)
    drop = {str(v) for v in (drop_variables or ())}
    wrap = wrap_frames or _dask_wrap

    ev = records.stream_events(db, run.uid, stream, missing=None)
    n = len(ev)
    coords = {
        "time": ("time", (ev.time * 1e9).round().astype("datetime64[ns]"), {"timezone": "UTC"}),
        "seq_num": ("time", ev.seq_num),
    }
    keys = {} if srec is None else srec.data_keys
    image_names = _image_field_names(db, run.uid, srec, n)
    data_vars: dict[str, Any] = {}
    for name, values in ev.columns.items():
        if name in drop or name in image_names or name in coords:
            continue
        arr, is_2d = column_to_array(values)
        dims: tuple[str, ...] = ("time", f"{name}_dim_0") if is_2d else ("time",)
        data_vars[name] = (dims, arr, _safe_attrs(keys.get(name, {}).items()))
    for name in image_names:
        if name in drop:
            continue
        attrs = _safe_attrs(keys.get(name, {}).items())
        dims = ("time", f"{name}_x", f"{name}_y")
        refs = records.frame_refs(db, run.uid, name, stream)
        if not np.array_equal(refs.seq_num, ev.seq_num):
            raise _ChangedWhileReading
        if refs.frame_shape is None:
            shape = keys.get(name, {}).get("shape")
            if isinstance(shape, list) and len(shape) == 2 and all(isinstance(s, int) for s in shape):
                data_vars[name] = (dims, da.full((n, *shape), np.nan, chunks=(max(n, 1), *shape)), attrs)
            continue
        stack = FrameStack(db.zarr_path, refs, db.path, run=run.uid, stream=stream, field=name)
        data_vars[name] = (dims, wrap(stack, name, chunks), attrs)
    attrs = run_attrs(db, run)
    attrs["stream"] = stream
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def open_run_tree(
    beamtime: Database | str | Path, uid: str, *, chunks: Any = None, wrap_frames: Wrap | None = None
) -> xr.DataTree:
    """All streams of one run as a :class:`xarray.DataTree` (``/<stream>`` nodes, run attrs at the root)."""
    db = beamtime if isinstance(beamtime, Database) else Database(beamtime)
    full = records.resolve_uid(db, uid)
    return xr.DataTree.from_dict(run_groups(db, full, chunks=chunks, wrap_frames=wrap_frames, prefix=""))


def run_groups(
    db: Database, uid: str, *, chunks: Any = None, wrap_frames: Wrap | None = None, prefix: str | None = None,
    drop_variables: Iterable[Hashable] | None = None,
) -> dict[str, xr.Dataset]:
    """``{"<prefix>": run attrs, "<prefix>/<stream>": Dataset, ...}`` for one run.

    ``prefix`` defaults to ``/<uid>``; ``""`` makes the run the root.
    """
    run = records.get_run(db, uid)
    if run is None:
        raise RunNotFoundError("no run has this uid", db.path, run=uid)
    base = f"/{uid}" if prefix is None else prefix
    out: dict[str, xr.Dataset] = {base or "/": xr.Dataset(attrs=run_attrs(db, run))}
    for s in records.list_streams(db, uid):
        out[f"{base}/{s.name}"] = open_run_dataset(
            db, uid, s.name, chunks=chunks, wrap_frames=wrap_frames, drop_variables=drop_variables
        )
    return out


def stream_names(db: Database, uid: str) -> list[str]:
    """Names of a run's streams in the order they were opened."""
    return [s.name for s in records.list_streams(db, uid)]
