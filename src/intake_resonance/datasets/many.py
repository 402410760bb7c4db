"""Many runs of one beamtime at once: stacked, as one events table, or as Datasets, from one bulk read.

Every function here reads the scalar events of all the runs asked for with
:func:`~intake_resonance.beamtime.records.many_event_tables` (a few SQL
queries, one Arrow decode per batch of about 65 536 events), and the runs'
rows, samples, counts, descriptors and image fields with one query each (per
500 runs), instead of a dozen small queries and one decode per run.

Typing is shared by the runs read together: a field is typed over all of
them (int64 only where every run holds integers in every event; float64
with NaN where a run holds floats or lacks the field). A field a run lacks
in every event, or holds only ``null`` in, is missing from that run.

A bad run among many (a broken event, undecodable metadata or
descriptors) raises its error, which names the file and the run (and the
stream, seq_num and field where there is one). With ``errors="skip"`` such
runs are left out instead, and their uids listed: in the stacked Dataset's
and the events table's ``skipped_runs`` attribute (``attrs`` of the
DataFrame; the Arrow table's schema metadata, as JSON).
"""

from __future__ import annotations

import json
import os
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..beamtime import records
from ..beamtime.errors import BeamtimeError, LayoutError
from ..beamtime.format import Database
from ..beamtime.names import variable_names
from ..beamtime.records.arrays import with_missing
from .attrs import is_scanned_axis, run_attrs
from .build import _field_attrs, build_run, event_times, finish_run, resolve_stream
from .location import open_database
from .stacking import run_label, shared_attrs, stack_runs

__all__ = ["ManyRuns", "read_many", "open_many", "stack_many", "events_frame", "LEADING", "renamed_field"]

#: The events table's first columns.
LEADING = ("uid", "seq_num", "time")


@dataclass
class ManyRuns:
    """What one bulk read of many runs holds: their events and everything their Datasets need.

    Attributes
    ----------
    db : Database
    stream : str
    uids : list of str
        The runs read, in order (skipped runs left out).
    events : ManyEvents
        Their events, run after run.
    attrs : list of dict
        Each run's Dataset attributes (with ``stream``).
    streams : dict of str to StreamRecord
        Each run's stream (runs without it are left out).
    images : dict of str to list of str
        Image fields of each run's stream (declared ``external`` or holding frames).
    skipped : list of str
        Runs left out with ``errors="skip"``.
    """

    db: Database
    stream: str
    uids: list[str]
    events: records.ManyEvents
    attrs: list[dict[str, Any]]
    streams: dict[str, records.StreamRecord]
    images: dict[str, list[str]]
    skipped: list[str] = field(default_factory=list)

    def table(self, i: int) -> records.EventTable:
        """Run ``i``'s events without the fields it lacks (all gaps in the shared typing)."""
        ev = self.events.table(i)
        return records.EventTable(ev.seq_num, ev.time, {k: v for k, v in ev.columns.items() if not _all_gaps(v)})


def _all_gaps(values: np.ndarray | list[Any]) -> bool:
    if isinstance(values, np.ndarray):
        return values.dtype.kind == "f" and bool(np.isnan(values).all())  # an empty run holds no field
    return all(v is None or v is records.MISSING for v in values)


def _resolve(db: Database, keys: Iterable[str]) -> tuple[list[str], dict[str, records.RunRecord]]:
    """Full uids for ``keys`` (uids or unique prefixes), and the run rows read on the way."""
    keys = [str(k) for k in keys]
    known = records.get_runs(db, keys)
    runs = [k if k in known else records.resolve_uid(db, k) for k in keys]
    prefixed = [u for u in runs if u not in known]
    if prefixed:
        known.update(records.get_runs(db, prefixed))
    return runs, known


def read_many(db: Database, uids: Iterable[str], stream: str = "primary", *, errors: str = "raise") -> ManyRuns:
    """Read one stream of many runs in bulk (see the module notes).

    Parameters
    ----------
    db : Database
    uids : iterable of str
        Full uids or unique prefixes of 6+ characters, in the order wanted.
    stream : str
    errors : {"raise", "skip"}

    Raises
    ------
    RunNotFoundError
        An unknown or ambiguous uid (whatever ``errors`` says: a key is not data).
    BeamtimeError
        With ``errors="raise"``, the first bad run's error, naming its uid.
    """
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', not {errors!r}")
    runs, rows = _resolve(db, uids)
    counts = records.events_per_run(db, runs)
    samples: dict[Any, records.SampleRecord | None] = {}
    bad: dict[str, BeamtimeError] = {}
    attrs: dict[str, dict[str, Any]] = {}
    for uid in dict.fromkeys(runs):
        run = rows[uid]
        try:
            if run.sample_id not in samples:
                samples[run.sample_id] = records.get_sample(db, run.sample_id)
            attrs[uid] = {**run_attrs(db, run, sample=samples[run.sample_id], num_events=counts.get(uid, 0)), "stream": stream}
        except BeamtimeError as exc:
            if errors == "raise":
                raise
            bad[uid] = exc
    try:
        streams = records.many_streams(db, runs, stream)
    except BeamtimeError:
        if errors == "raise":
            raise
        streams = {}
        for uid in runs:  # find the run whose descriptors are broken
            try:
                streams.update(records.many_streams(db, [uid], stream))
            except BeamtimeError as exc:
                bad[uid] = exc
    for uid in dict.fromkeys(runs):
        if uid not in streams and uid not in bad and rows[uid].time_stop is not None:
            resolve_stream(db, rows[uid], stream)  # a closed run without it: RunNotFoundError naming its streams
    good = [u for u in runs if u not in bad]
    events = records.many_event_tables(db, good, stream, errors=errors)
    bad.update(events.skipped)
    if events.skipped:
        good = [u for u in good if u not in events.skipped]
        events = records.many_event_tables(db, good, stream)
    found = records.many_image_fields(db, good, stream, len(events))
    images = {}
    for uid in good:
        srec = streams.get(uid)
        declared = [] if srec is None else [k for k, d in srec.data_keys.items() if d.get("external")]
        names = list(dict.fromkeys([*declared, *found.get(uid, [])]))
        if names:
            images[uid] = names
    return ManyRuns(db, stream, good, events, [attrs[u] for u in good], streams, images, list(dict.fromkeys(u for u in runs if u in bad)))


def open_many(
    beamtime: Database | str | os.PathLike[str],
    uids: Iterable[str],
    stream: str = "primary",
    *,
    chunks: Any = None,
    drop_variables: Iterable[Hashable] | str | None = None,
    errors: str = "raise",
) -> list[xr.Dataset]:
    """Several runs as Datasets, read in bulk, typed over all the runs together.

    Variables, attributes, chunks and dask names are those
    :func:`~intake_resonance.datasets.open.open_run_dataset` gives, except that a
    field's dtype is shared by the runs read together (an int64 field of one
    run is float64 when another run holds floats in it or lacks it).

    Parameters
    ----------
    beamtime : Database or path
    uids : iterable of str
    stream, chunks, drop_variables
        As :func:`~intake_resonance.datasets.open.open_run_dataset`.
    errors : {"raise", "skip"}
        A bad run raises its error, or is left out.
    """
    with open_database(beamtime) as db:
        return _datasets(read_many(db, uids, stream, errors=errors), chunks, drop_variables)


def _datasets(many: ManyRuns, chunks: Any, drop_variables: Iterable[Hashable] | str | None) -> list[xr.Dataset]:
    from .open import _drop_names

    drop = _drop_names(drop_variables)
    out = []
    for i, uid in enumerate(many.uids):
        ds, stacks = build_run(many.db, uid, many.stream, drop_variables=drop, chunks=chunks, events=many.table(i), attrs=many.attrs[i])
        out.append(finish_run(many.db, uid, many.stream, ds, stacks))
    return out


def stack_many(
    beamtime: Database | str | os.PathLike[str],
    uids: Iterable[str],
    stream: str = "primary",
    dim: str = "run",
    by: str | None = None,
    *,
    align: str | Sequence[str] | None = None,
    tolerance: float | None = None,
    chunks: Any = None,
    errors: str = "raise",
) -> xr.Dataset:
    """Many runs of one beamtime stacked along ``dim``, read in bulk.

    The Dataset :func:`~intake_resonance.datasets.stacking.stack_runs` gives
    for these runs' Datasets (same variables, values, dtypes, coordinates and
    attributes), read with a few queries instead of a dozen per run. Runs
    without frames, stacked by event number, are stacked by NumPy straight
    from the shared columns; others go through ``stack_runs`` with Datasets
    built from the bulk read (frames stay lazy, one dask graph).

    Parameters
    ----------
    beamtime : Database or path
    uids : iterable of str
        Full uids or unique prefixes, in the order stacked.
    stream : str
    dim, by, align, tolerance
        As :func:`~intake_resonance.datasets.stacking.stack_runs`.
    chunks
        Frame chunks, as :func:`~intake_resonance.datasets.open.open_run_dataset`.
    errors : {"raise", "skip"}
        A bad run raises its error (naming its uid), or is left out and
        listed in the ``skipped_runs`` attribute (always present: empty when
        no run was skipped).

    Raises
    ------
    LayoutError
        No run to stack, or as ``stack_runs``.
    """
    with open_database(beamtime) as db:
        many = read_many(db, uids, stream, errors=errors)
        if not many.uids:
            raise LayoutError("no run to stack" + (f" (skipped: {', '.join(many.skipped)})" if many.skipped else ""), db.path)
        out = None
        if align is None and tolerance is None and not many.images:
            out = _stack_numpy(many, dim, by)
        if out is None:
            out = stack_runs(_datasets(many, chunks, None), dim=dim, by=by, align=align, tolerance=tolerance)
    out.attrs["skipped_runs"] = list(many.skipped)  # always there, as the events table's: empty when none was
    return out


# ------------------------------------------------------------------ the NumPy stack
def _stack_numpy(many: ManyRuns, dim: str, by: str | None) -> xr.Dataset | None:
    """Runs without frames stacked by event number straight from the shared columns; None when a case needs xarray."""
    ev, offsets = many.events.events, many.events.offsets
    counts = np.diff(offsets)
    n_runs, width = len(many.uids), int(counts.max()) if len(counts) else 0
    if {dim, "event"} & {"time", "seq_num"} or dim == "event" or width == 0:
        return None
    keys_of = [many.streams[u].data_keys if u in many.streams else {} for u in many.uids]
    present: dict[str, np.ndarray] = {}
    arrays: dict[str, np.ndarray] = {}
    for name, values in ev.columns.items():
        arr, is_2d = records.column_array(values)
        text = arr.dtype.kind == "O" and all(isinstance(v, str) for v in arr)  # variable-width text, no gaps
        if is_2d or not (arr.dtype.kind in "iufbU" or text):
            return None  # lists, mixed kinds, strings with gaps: xarray's rules apply
        has = _runs_with(arr, offsets, counts)
        if (arr.dtype.kind in "bU" or text) and not has[counts > 0].all():
            return None
        present[name], arrays[name] = has, arr
    full = bool((counts == width).all())
    var_names = variable_names(list(arrays))
    if dim in var_names.values() or "event" in var_names.values():
        return None
    rows = np.repeat(np.arange(n_runs), counts)
    cols = np.arange(len(ev)) - np.repeat(offsets[:-1], counts)

    def grid(values: np.ndarray) -> np.ndarray:
        if full:  # a run lacking a field holds NaN in the shared column already
            return values.reshape(n_runs, width)
        dtype, fill = with_missing(values.dtype)
        out = np.full((n_runs, width), fill, dtype=dtype)
        out[rows, cols] = values
        return out

    time = event_times(ev.time)
    labels = _labels(many, by, arrays, present)
    coords: dict[Any, Any] = {dim: xr.Variable(dim, np.asarray(labels)), "event": ("event", np.arange(width))}
    for name, values, attrs in (("time", time, {"timezone": "UTC"}), ("seq_num", ev.seq_num, {})):
        stacked = grid(values)
        # A coordinate every run shares stays one row, as xr.concat(coords="different") keeps it.
        same = full and bool((stacked == stacked[:1]).all())
        coords[name] = xr.Variable("event", stacked[0], attrs) if same else xr.Variable((dim, "event"), stacked, attrs)
    if by is not None:
        coords["uid"] = (dim, list(many.uids))
    data_vars = {}
    for name, arr in arrays.items():
        has = present[name]
        var = var_names.get(name, name)
        made: dict[int, dict[str, Any]] = {}  # runs of one plan share one decoded descriptor dict
        attrs = shared_attrs([_cached(made, keys_of[i], name, var) for i in range(n_runs) if has[i]])
        values = grid(arr)
        if "dtype" in attrs and attrs["dtype"] != "number" and str(attrs["dtype"]) != str(values.dtype):
            del attrs["dtype"]  # a padded int field is float now
        if is_scanned_axis(next((keys_of[i].get(name) for i in range(n_runs) if has[i]), None)):
            # a motor: a coordinate, one row when every run scanned the same points (as xr.concat keeps it)
            same = full and bool(has.all()) and bool((values == values[:1]).all())
            coords[var] = xr.Variable("event", values[0], attrs) if same else xr.Variable((dim, "event"), values, attrs)
        else:
            data_vars[var] = xr.Variable((dim, "event"), values, attrs)
    return xr.Dataset(data_vars, coords=coords, attrs=shared_attrs(many.attrs))


def _cached(made: dict[int, dict[str, Any]], keys: dict[str, Any], name: str, var: str) -> dict[str, Any]:
    found = made.get(id(keys))
    if found is None:
        found = made[id(keys)] = _field_attrs(keys, name, var)
    return found


def _runs_with(arr: np.ndarray, offsets: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per run, whether it holds the field in some event (a float column's NaN are gaps)."""
    if arr.dtype.kind != "f" or not len(arr):
        return counts > 0
    values = np.add.reduceat((~np.isnan(arr)).astype(np.int64), np.minimum(offsets[:-1], len(arr) - 1))
    return (counts > 0) & (values > 0)


def _labels(many: ManyRuns, by: str | None, arrays: dict[str, np.ndarray], present: dict[str, np.ndarray]) -> list[Any]:
    if by is None:
        return list(many.uids)
    offsets = many.events.offsets
    source = str(many.db.path.resolve())
    out = []
    for i, uid in enumerate(many.uids):
        attrs = many.attrs[i]
        if by in attrs:
            out.append(attrs[by])
            continue
        part: dict[str, Any] = {}
        if by in arrays and present[by][i]:
            part[by] = ("time", arrays[by][offsets[i] : offsets[i + 1]])
        one = xr.Dataset(part, attrs={"uid": uid, "stream": many.stream})
        one.encoding["source"] = source
        out.append(run_label(one, by))
    return out


# ------------------------------------------------------------------ the events table
def renamed_field(name: str, taken: Iterable[str] = LEADING) -> str:
    """The events table's column for a field whose name is one of :data:`LEADING`: ``<name>_field`` (then ``_field_1``, ...)."""
    taken = set(taken)
    if name not in LEADING:
        return name
    out, k = f"{name}_field", 0
    while out in taken:
        k += 1
        out = f"{name}_field_{k}"
    return out


def events_frame(
    beamtime: Database | str | os.PathLike[str],
    uids: Iterable[str],
    stream: str = "primary",
    *,
    fields: Sequence[str] | None = None,
    engine: str = "pandas",
    errors: str = "raise",
) -> Any:
    """The scalar events of many runs as one table, read in bulk.

    Parameters
    ----------
    beamtime : Database or path
    uids : iterable of str
        Full uids or unique prefixes, in the order wanted.
    stream : str
        Stream to read (default ``"primary"``).
    fields : sequence of str, optional
        Fields to keep, in this order (default: every field, in order of
        first appearance). A field no run holds is a column of NaN.
    engine : {"pandas", "arrow"}
        A ``pandas.DataFrame`` or a ``pyarrow.Table``.
    errors : {"raise", "skip"}
        A bad run raises its error (naming its uid), or is left out and
        listed in ``skipped_runs`` (``df.attrs``; in Arrow, the schema
        metadata as JSON).

    Returns
    -------
    pandas.DataFrame or pyarrow.Table
        One row per event, runs in the order given, each in ``seq_num``
        order. Columns ``uid`` (categorical, categories the runs read in
        order), ``seq_num`` (int64), ``time`` (``datetime64[ns, UTC]``),
        then one per field, typed as the Datasets' variables but over all
        runs together: int64 only where every event of every run holds an
        integer, else float64 with NaN where a run lacks the field; bool;
        str; object for mixed kinds and lists. A field named ``uid``,
        ``seq_num`` or ``time`` becomes ``uid_field`` etc.
        (:func:`renamed_field`). ``attrs``: ``stream``, ``skipped_runs``.
    """
    if engine not in ("pandas", "arrow"):
        raise ValueError(f"engine must be 'pandas' or 'arrow', not {engine!r}")
    with open_database(beamtime) as db:
        if errors not in ("raise", "skip"):
            raise ValueError(f"errors must be 'raise' or 'skip', not {errors!r}")
        runs, _ = _resolve(db, uids)
        many = records.many_event_tables(db, runs, stream, errors=errors)
    ev = many.events
    kept = [u for u in runs if u not in many.skipped]
    categories = list(dict.fromkeys(kept))
    codes_of = {u: k for k, u in enumerate(categories)}
    codes = np.repeat(np.array([codes_of.get(u, -1) for u in runs], dtype=np.int32), many.counts())
    data: dict[str, Any] = {
        "uid": pd.Categorical.from_codes(codes, categories=pd.Index(categories, dtype=object)),
        "seq_num": ev.seq_num,
        "time": pd.DatetimeIndex(event_times(ev.time)).tz_localize("UTC"),
    }
    names = list(ev.columns) if fields is None else list(fields)
    for name in names:
        col = renamed_field(name, [*LEADING, *names])
        values = ev.columns.get(name)
        if values is None:
            data[col] = np.full(len(ev), np.nan)
            continue
        arr, is_2d = records.column_array(values)
        data[col] = list(arr) if is_2d else arr
    df = pd.DataFrame(data, copy=False)
    skipped = [u for u in dict.fromkeys(runs) if u in many.skipped]
    df.attrs = {"stream": stream, "skipped_runs": skipped}
    if engine == "pandas":
        return df
    import pyarrow as pa

    table = pa.Table.from_pandas(df, preserve_index=False)
    return table.replace_schema_metadata({"stream": stream, "skipped_runs": json.dumps(skipped)})
