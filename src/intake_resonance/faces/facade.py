"""The beamline's own reader API (``Catalog``, ``Run``, ...) as a facade.

Users of the ALS 11.0.1.2 RSoXS control software already have scripts written
against its small reader: ``Catalog(db_path)``, ``recent()``, ``by_sample()``,
``catalog[uid]``, ``run.table()`` and ``run.images()``. This module offers the
same names, fields, values and dtypes, but reads through the layers below
(:mod:`~intake_resonance.beamtime.format`, :mod:`~intake_resonance.beamtime.records`,
:mod:`~intake_resonance.beamtime.frames`), so it shares their read-only opening, their
error family and their vectorised decoding. It never writes SQL itself.

Differences from the beamline reader, all on inputs it cannot handle:

- paths holding ``#``, ``?``, ``%`` or spaces open (the URI is quoted);
- a missing ``.db`` raises :class:`~intake_resonance.beamtime.errors.BeamtimeNotFoundError`
  instead of creating nothing and failing later;
- image indices may be NumPy integers; ``bool`` indices are refused;
- frames are read from a missing ``.zarr`` store only when indexed, and then
  raise :class:`~intake_resonance.beamtime.errors.FramesMissingError`;
- using a closed catalog (or its runs' ``table``/``images``/``sample``)
  raises ``ValueError``.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..beamtime import records
from ..beamtime.format import Database
from ..beamtime.frames import FrameStack

__all__ = ["Catalog", "Run", "RunSummary", "SampleMetadata", "LazyImageSequence"]

_LEADING = ("seq_num", "time")


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


def _summary(rec: records.RunRecord) -> RunSummary:
    return RunSummary(
        uid=rec.uid,
        plan_name=rec.plan_name,
        time_start=rec.time_start,
        sample_name=rec.sample_name,
        time_stop=rec.time_stop,
        exit_status=rec.exit_status,
    )


class Catalog:
    """Read-only access to the runs of one beamtime.

    Parameters
    ----------
    db_path : str or Path
        The beamtime's ``.db`` file; its frames are read from the ``.zarr``
        store beside it.

    Raises
    ------
    BeamtimeNotFoundError
        If ``db_path`` does not exist (also a ``FileNotFoundError``).
    BeamtimeFormatError
        If it is not a beamtime database this package can read.

    Examples
    --------
    >>> with Catalog("beamtime.db") as cat:                  # doctest: +SKIP
    ...     latest = cat.recent(1)[0]
    ...     run = cat[latest.uid]
    ...     df = run.table()
    ...     first = run.images()[0]
    """

    def __init__(self, db_path: str | Path) -> None:
        self._db = Database(db_path)
        self._closed = False

    @property
    def path(self) -> Path:
        """Path: the beamtime's ``.db`` file."""
        return self._db.path

    @property
    def zarr_path(self) -> Path:
        """Path: the ``.zarr`` store holding the frames."""
        return self._db.zarr_path

    @property
    def closed(self) -> bool:
        """bool: whether :meth:`close` was called."""
        return self._closed

    def _database(self) -> Database:
        # Database reopens lazily after close(); a closed facade must stay closed,
        # like the beamline's, whose connection is gone for good.
        if self._closed:
            raise ValueError(f"{self.path}: operation on a closed Catalog")
        # One stat per call: a .db replaced since (rsync lands a new inode) is read
        # afresh, a deleted one raises BeamtimeNotFoundError; never the old file's runs.
        self._db.refresh()
        return self._db

    def recent(self, n: int = 10) -> list[RunSummary]:
        """The ``n`` runs that started last.

        Parameters
        ----------
        n : int, default 10
            How many runs at most; a negative ``n`` returns all of them.

        Returns
        -------
        list of RunSummary
            Newest first (by ``time_start``).
        """
        n = operator.index(n)  # SQLite would refuse a float LIMIT less clearly
        return [_summary(rec) for rec in records.recent_runs(self._database(), n)]

    def by_sample(self, name: str) -> list[RunSummary]:
        """The runs whose sample is named exactly ``name``.

        Parameters
        ----------
        name : str
            The sample's name; several sample rows may share it.

        Returns
        -------
        list of RunSummary
            Newest first; runs without a sample never match.
        """
        return [_summary(rec) for rec in records.runs_by_sample(self._database(), name)]

    def __getitem__(self, uid: str) -> Run:
        """The run with exactly this uid.

        Parameters
        ----------
        uid : str
            The run's full hex uid (no prefixes, as in the beamline reader).

        Returns
        -------
        Run

        Raises
        ------
        KeyError
            ``KeyError(uid)`` when no run has this uid.
        """
        db = self._database()
        rec = records.get_run(db, uid) if isinstance(uid, str) else None
        if rec is None:
            # args[0] must be the uid itself: scripts written for the beamline rely on it.
            raise KeyError(uid)
        return Run(self, rec)

    def close(self) -> None:
        """Close the database connection; the catalog cannot be used afterwards."""
        self._closed = True
        self._db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " (closed)" if self._closed else ""
        return f"<Catalog {str(self.path)!r}{state}>"


class Run:
    """One run of a beamtime: its row, its sample, its events and its frames.

    Made by ``catalog[uid]``; the run's row is read once, at that moment.

    Parameters
    ----------
    catalog : Catalog
        The catalog the run belongs to (its connection is shared).
    record : records.RunRecord
        The run's row.
    """

    def __init__(self, catalog: Catalog, record: records.RunRecord) -> None:
        self._catalog = catalog
        self._record = record

    @property
    def uid(self) -> str:
        """str: the run's hex uid."""
        return self._record.uid

    @property
    def plan_name(self) -> str:
        """str: the plan that made the run."""
        return self._record.plan_name

    @property
    def time_start(self) -> float:
        """float: start, epoch seconds."""
        return self._record.time_start

    @property
    def time_stop(self) -> float | None:
        """float or None: stop, epoch seconds; None while the run is open."""
        return self._record.time_stop

    @property
    def exit_status(self) -> str | None:
        """str or None: ``success``, ``aborted``, ``failed``; None while open."""
        return self._record.exit_status

    @property
    def num_events(self) -> int:
        """int: events of all streams together; 0 until the run closes."""
        return self._record.num_events

    @property
    def sample(self) -> SampleMetadata | None:
        """SampleMetadata or None: the run's sample, read anew on each access.

        None when the run has no sample or its row no longer exists.
        """
        rec = records.get_sample(self._catalog._database(), self._record.sample_id)
        if rec is None:
            return None
        return SampleMetadata(
            name=rec.name,
            formula=rec.formula,
            serial=rec.serial,
            tags=list(rec.tags),
            beamline_pos=rec.beamline_pos,
            extra=dict(rec.extra),
            id=rec.id,
        )

    def table(self, stream: str = "primary") -> pd.DataFrame:
        """The scalar readings of one stream as a DataFrame.

        Parameters
        ----------
        stream : str, default "primary"
            Name of the stream.

        Returns
        -------
        pandas.DataFrame
            One row per event in ``seq_num`` order; columns ``seq_num``,
            ``time`` (epoch seconds), then one per field in order of first
            appearance. A field an event lacks is NaN, a JSON ``null`` is
            None, and each column's dtype is what pandas infers for a list of
            per-event records. With no events (or no such stream), an empty
            frame with just the ``seq_num`` and ``time`` columns.

        Raises
        ------
        BadJSONError
            If an event's data is not a JSON object.
        """
        # Typed columns come straight from the columnar reader; list columns
        # (gaps, strings, mixed kinds) are inferred as pandas does for records.
        db = self._catalog._database()
        ev = records.event_table(db, self.uid, stream)
        if len(ev) == 0:
            return pd.DataFrame(columns=pd.Index(list(_LEADING)))
        # int64 and float64, as pandas infers for the records' Python ints and floats.
        data: dict[str, Any] = {"seq_num": ev.seq_num, "time": ev.time}
        for name, values in ev.columns.items():
            if name in _LEADING:
                # A field named like a leading column replaces it where present
                # (the beamline updates each record with the event's data).
                lead = data[name].tolist()
                if isinstance(values, np.ndarray) and values.dtype.kind == "f" and np.isnan(values).any():
                    values = records.stream_events(db, self.uid, stream).columns[name]  # NaN: absent or a value?
                plain = values.tolist() if isinstance(values, np.ndarray) else values
                data[name] = [old if v is records.MISSING else v for old, v in zip(lead, plain)]
                continue
            if isinstance(values, np.ndarray):
                data[name] = values  # float64 (NaN for gaps), int64 or bool: what pandas would infer
                continue
            types = set(map(type, values))
            if type(records.MISSING) in types:
                # Per-record frames mark an absent key with NaN before inferring dtypes.
                values = [np.nan if v is records.MISSING else v for v in values]
                types = (types - {type(records.MISSING)}) | {float}
            data[name] = _column(values, types)
        # Lists left as lists are inferred as pandas does for a list of
        # records (same object-array conversion), without the records.
        return pd.DataFrame(data, copy=False)

    def images(self, field: str = "detector_image") -> LazyImageSequence:
        """The frames of one image field, lazily.

        Parameters
        ----------
        field : str, default "detector_image"
            The image field.

        Returns
        -------
        LazyImageSequence
            The field's frames across all streams of the run, in ``seq_num``
            order; empty when the field has none. Nothing is read yet.

        Raises
        ------
        FrameMismatchError
            If the field's references disagree on frame shape or dtype.
        """
        db = self._catalog._database()
        refs = records.frame_refs(db, self.uid, field)
        return LazyImageSequence(FrameStack(db.zarr_path, refs, db.path, run=self.uid, field=field))

    def __repr__(self) -> str:
        return f"<Run {self.uid} plan_name={self.plan_name!r} exit_status={self.exit_status!r}>"


def _column(values: list[Any], types: set[type]) -> Any:
    """``values`` as the array pandas would infer, built directly when that is certain.

    Only all-float and all-int columns are converted here (numpy does it in
    C, several times faster than pandas' object inference); anything else
    stays a list for pandas to infer.
    """
    if types == {float}:
        return np.array(values, dtype=np.float64)
    if types == {int}:
        try:
            return np.array(values, dtype=np.int64)
        except OverflowError:  # pandas makes uint64 or object of these: let it
            return values
    return values


class LazyImageSequence:
    """A run's frames of one field, read only when indexed.

    Parameters
    ----------
    frames : FrameStack
        The frames, one per referencing event.

    Notes
    -----
    ``seq[i]`` (an ``int`` or NumPy integer, negative from the end) returns
    one ``(shape_x, shape_y)`` frame; ``seq[a:b:c]`` a stacked
    ``(n, shape_x, shape_y)`` array, or ``np.empty((0,), np.int32)`` when the
    slice selects nothing (as the beamline reader returns). Any other index,
    ``bool`` included, raises ``TypeError``.
    """

    def __init__(self, frames: FrameStack) -> None:
        self._frames = frames

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def shape(self) -> tuple[int, int, int]:
        """tuple of int: ``(n_frames, shape_x, shape_y)``; ``(0, 0, 0)`` when empty."""
        if len(self._frames) == 0:
            return (0, 0, 0)
        return self._frames.shape

    def __getitem__(self, idx: int | slice) -> np.ndarray:
        """Read one frame or a stack of frames.

        Parameters
        ----------
        idx : int or slice

        Returns
        -------
        numpy.ndarray

        Raises
        ------
        IndexError
            If an integer index is out of range.
        TypeError
            If ``idx`` is neither an integer nor a slice.
        FramesMissingError
            If the Zarr store or an array in it is absent.
        """
        # bool is an int subclass; frame True/False is almost surely a mistake.
        if isinstance(idx, (bool, np.bool_)):
            raise TypeError("LazyImageSequence index must be an integer or a slice, not bool")
        n = len(self._frames)
        if isinstance(idx, (int, np.integer)):
            i = int(idx)
            if not -n <= i < n:
                raise IndexError(f"frame {i} is out of range: the sequence holds {n} frames")
            return self._frames[i]
        if isinstance(idx, slice):
            if len(range(*idx.indices(n))) == 0:
                return np.empty((0,), dtype=np.int32)
            return self._frames[idx]
        raise TypeError(f"LazyImageSequence index must be an integer or a slice, not {type(idx).__name__}")

    def __repr__(self) -> str:
        return f"<LazyImageSequence field={self._frames.field!r} shape={self.shape}>"
