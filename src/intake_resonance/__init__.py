"""intake-resonance: ALS RSoXS beamtimes as intake catalogs and xarray Datasets.

Three ways in:

- intake: ``intake.open_resonance_beamtime("bt.db")`` or a YAML catalog;
- xarray: ``xr.open_dataset("bt.db", engine="resonance", group=uid)``;
- the beamline's API: ``from intake_resonance import Catalog``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .check import Finding, check
from .dataset import open_run_dataset, open_run_tree
from .errors import (
    BadJSONError,
    BeamtimeDataError,
    BeamtimeError,
    BeamtimeFormatError,
    BeamtimeNotFoundError,
    FrameIndexError,
    FrameMismatchError,
    FramesMissingError,
    RunNotFoundError,
    StoreEscapeError,
)
from .facade import Catalog, LazyImageSequence, Run, RunSummary, SampleMetadata
from .frames import FrameStack
from .intake_drivers import BeamtimeCatalog, BeamtimesCatalog, RunSource
from .stacking import stack_runs
from .writer import BeamtimeWriter

__all__ = [
    "BadJSONError",
    "BeamtimeCatalog",
    "BeamtimeDataError",
    "BeamtimeError",
    "BeamtimeFormatError",
    "BeamtimeNotFoundError",
    "BeamtimeWriter",
    "BeamtimesCatalog",
    "Catalog",
    "FrameIndexError",
    "FrameMismatchError",
    "FrameStack",
    "FramesMissingError",
    "Finding",
    "LazyImageSequence",
    "Run",
    "RunNotFoundError",
    "RunSource",
    "RunSummary",
    "SampleMetadata",
    "StoreEscapeError",
    "__version__",
    "check",
    "open_run_dataset",
    "open_run_tree",
    "stack_runs",
]
