"""What a :class:`~.catalog.RunCatalog` offers beyond intake's Catalog: the runs table, stacking, one events table.

The same calls as the intake v1 ``BeamtimeCatalog``, answered by the same
functions below the faces (:mod:`intake_resonance.datasets.many`,
:mod:`intake_resonance.datasets.runs_table`), so both faces give the same
frames and Datasets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

__all__ = ["ManyRunsMixin"]


class ManyRunsMixin:
    """``to_dataframe()``, ``stack()`` and ``events()`` of a catalog listing runs (``self._state``)."""

    _state: Any

    def to_dataframe(self) -> pd.DataFrame:
        """One row per run listed, oldest first: times, status and counts, as intake v1's ``to_dataframe()``.

        Cached per beamtime state (see :mod:`intake_resonance.datasets.runs_table`).
        """
        from ...beamtime.format import Database
        from ...datasets.runs_table import runs_frame

        state = self._state
        with Database(state.path) as db:
            return runs_frame(db, state.query, state.stream)

    def stack(
        self, runs: list[Any] | None = None, dim: str = "run", by: str | None = None, stream: str | None = None, **options: Any
    ) -> xr.Dataset:
        """Runs listed here stacked into one lazy Dataset, read in bulk (:func:`~intake_resonance.datasets.many.stack_many`).

        ``runs`` are uids, prefixes or positions (default: every run listed);
        ``options``: ``align=``, ``tolerance=``, ``errors=``.
        """
        from ...beamtime.format import Database
        from ...datasets.many import stack_many

        state = self._state
        with Database(state.path) as db:
            uids = self._run_uids(db, runs)
            return stack_many(db, uids, stream or state.stream, dim=dim, by=by, chunks=state.chunks, **options)

    def events(
        self, stream: str | None = None, fields: list[str] | None = None, *, runs: list[Any] | None = None, **options: Any
    ) -> Any:
        """The scalar events of the runs listed here as one table (:func:`~intake_resonance.datasets.many.events_frame`).

        ``options``: ``engine="arrow"``, ``errors="skip"``.
        """
        from ...beamtime.format import Database
        from ...datasets.many import events_frame

        state = self._state
        with Database(state.path) as db:
            return events_frame(db, self._run_uids(db, runs), stream or state.stream, fields=fields, **options)

    def _run_uids(self, db: Any, runs: list[Any] | None) -> list[str]:
        from ...datasets.listing import run_keys

        return run_keys(db, runs, self._state.uids, self._state.query)
