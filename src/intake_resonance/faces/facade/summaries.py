"""The beamline reader's plain records: a sample's row and a run as listed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...beamtime import records

__all__ = ["RunSummary", "SampleMetadata", "run_summary", "sample_metadata"]


@dataclass
class SampleMetadata:
    """A row of the ``samples`` table.

    Parameters
    ----------
    name : str
        Display name of the sample, e.g. ``"PS"``.
    formula : str, optional
        Chemical formula, e.g. ``"C8H8"``.
    serial : str, optional
        Identifier on the sample holder.
    tags : list of str
        Free tags (the JSON list of the ``tags`` column; empty when NULL).
    beamline_pos : str, optional
        Stage slot the sample sat in.
    extra : dict
        Any further metadata (the JSON object of ``extra``; empty when NULL).
    id : int, optional
        The row's primary key.
    """

    name: str
    formula: str | None = None
    serial: str | None = None
    tags: list[str] = field(default_factory=list)
    beamline_pos: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass
class RunSummary:
    """One run as listed by :meth:`Catalog.recent` and :meth:`Catalog.by_sample`.

    Parameters
    ----------
    uid : str
        The run's 32-character hex uid.
    plan_name : str
        The plan that made the run, e.g. ``"nexafs"``.
    time_start : float
        Start, epoch seconds.
    sample_name : str, optional
        Name of the run's sample; None without one (or when its row is gone).
    time_stop : float, optional
        Stop, epoch seconds; None while the run is open or if it never closed.
    exit_status : str, optional
        ``"success"``, ``"aborted"``, ``"failed"``, or None while open.
    """

    uid: str
    plan_name: str
    time_start: float
    sample_name: str | None = None
    time_stop: float | None = None
    exit_status: str | None = None


def run_summary(rec: records.RunRecord) -> RunSummary:
    """A run's row as the beamline's listing shows it."""
    return RunSummary(
        uid=rec.uid,
        plan_name=rec.plan_name,
        time_start=rec.time_start,
        sample_name=rec.sample_name,
        time_stop=rec.time_stop,
        exit_status=rec.exit_status,
    )


def sample_metadata(rec: records.SampleRecord) -> SampleMetadata:
    """A sample's row as the beamline's reader gives it (fresh lists and dicts)."""
    return SampleMetadata(
        name=rec.name,
        formula=rec.formula,
        serial=rec.serial,
        tags=list(rec.tags),
        beamline_pos=rec.beamline_pos,
        extra=dict(rec.extra),
        id=rec.id,
    )
