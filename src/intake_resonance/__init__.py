"""intake-resonance: ALS RSoXS beamtimes as intake catalogs and xarray Datasets."""

from __future__ import annotations

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
from .frames import FrameStack
from .writer import BeamtimeWriter

__version__ = "0.1.0"

__all__ = [
    "BadJSONError",
    "BeamtimeDataError",
    "BeamtimeError",
    "BeamtimeFormatError",
    "BeamtimeNotFoundError",
    "BeamtimeWriter",
    "FrameIndexError",
    "FrameMismatchError",
    "FrameStack",
    "FramesMissingError",
    "RunNotFoundError",
    "StoreEscapeError",
    "__version__",
]
