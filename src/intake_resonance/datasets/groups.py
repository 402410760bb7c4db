"""A run's streams as DataTree groups: ``{"/<uid>": run attrs, "/<uid>/<stream>": Dataset}``."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable

import xarray as xr

from ..beamtime import records
from ..beamtime.errors import RunNotFoundError
from ..beamtime.format import Database
from .attrs import run_attrs
from .build import build_run_dataset

__all__ = ["Opener", "run_groups", "stream_names"]

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
