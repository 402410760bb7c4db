"""The beamline reader's ``Run``: a run's row, sample, event table and frames."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from ...beamtime import records
from ...beamtime.format import Database
from ...beamtime.frames import FrameStack
from ...datasets.tables import beamline_table
from .images import LazyImageSequence
from .summaries import SampleMetadata, sample_metadata

__all__ = ["Run"]


class Run:
    """One run of a beamtime: its row, its sample, its events and its frames.

    Made by ``catalog[uid]``; the run's row is read once, at that moment.

    Parameters
    ----------
    database : callable
        Gives the catalog's open database (its connection is shared; a
        closed catalog raises ``ValueError``).
    record : records.RunRecord
        The run's row.
    """

    def __init__(self, database: Callable[[], Database], record: records.RunRecord) -> None:
        self._database = database
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
        rec = records.get_sample(self._database(), self._record.sample_id)
        return None if rec is None else sample_metadata(rec)

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
        return beamline_table(self._database(), self.uid, stream)

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
        db = self._database()
        refs = records.frame_refs(db, self.uid, field)
        return LazyImageSequence(FrameStack(db.zarr_path, refs, db.path, run=self.uid, field=field, identity=db.identity))

    def __repr__(self) -> str:
        return f"<Run {self.uid} plan_name={self.plan_name!r} exit_status={self.exit_status!r}>"
