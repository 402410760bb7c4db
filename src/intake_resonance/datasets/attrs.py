"""A run's attributes, and making any value a netCDF- and Zarr-safe attribute."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np
import orjson

from ..beamtime import records
from ..beamtime.format import Database

__all__ = ["is_scanned_axis", "netcdf_safe", "run_attrs", "safe_attrs", "where"]


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


def safe_attrs(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """``(name, value)`` pairs as attributes through :func:`netcdf_safe`; NULL values are left out.

    netCDF has no None, and an absent attribute reads the same.
    """
    return {str(k): netcdf_safe(v) for k, v in items if v is not None}


def is_scanned_axis(descriptor: Any) -> bool:
    """Whether a field is a scanned axis (its descriptor's ``source`` is ``motor``): a coordinate, not a reading.

    Motors (``energy_position``, ``polarization_position``, ``sam_x_position``)
    become coordinates along ``time`` in every Dataset, so ``groupby``,
    arithmetic and ``.sel`` after ``set_xindex`` keep them; readings (``i0``,
    ``photodiode``) stay data variables.
    """
    return isinstance(descriptor, dict) and descriptor.get("source") == "motor"


def where(ds: Any) -> dict[str, Any]:
    """Where a Dataset of ours comes from, as :class:`~intake_resonance.beamtime.errors.BeamtimeError` takes it.

    ``path`` (``encoding["source"]``: the resolved ``.db``), ``run`` and
    ``stream``, from a run's Dataset or a stack of runs (None where unknown).
    """
    return {"path": ds.encoding.get("source"), "run": ds.attrs.get("uid"), "stream": ds.attrs.get("stream")}


def _iso(t: float | None) -> str | None:
    return records.iso_utc(t)


_FETCH: Any = object()


def run_attrs(
    db: Database, run: records.RunRecord, *, sample: records.SampleRecord | None = _FETCH, num_events: int | None = None
) -> dict[str, Any]:
    """Dataset attributes of a run: the run row, its sample and its metadata.

    ``time_start``/``time_stop`` are ISO 8601 text in UTC; ``num_events``
    counts the committed events of all the run's streams (see
    :mod:`intake_resonance.beamtime.records.summary`), so a run still being written
    shows its events so far.

    Metadata keys are added as they are, unless they clash with a run or
    sample attribute; then they get a ``metadata_`` prefix. NULL values are
    left out.

    ``sample`` and ``num_events``, when given (a many-run read fetches them
    for all runs at once), stand for their lookups.
    """
    if sample is _FETCH:
        sample = records.get_sample(db, run.sample_id)
    if num_events is None:
        num_events = records.run_counts(db, run.uid).num_events
    items: list[tuple[str, Any]] = [
        ("uid", run.uid),
        ("plan_name", run.plan_name),
        ("time_start", _iso(run.time_start)),
        ("time_stop", _iso(run.time_stop)),
        ("exit_status", run.exit_status),
        # Committed events of all streams, an open run's too (records.summary defines the counts).
        ("num_events", num_events),
        ("operator", run.operator),
        ("sample_name", run.sample_name),
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
    attrs = safe_attrs(items)
    taken = {k for k, _ in items} | {"stream"}
    for key, value in run.metadata(db).items():
        name = f"metadata_{key}" if key in taken else str(key)
        attrs.update(safe_attrs([(name, value)]))
    return attrs
