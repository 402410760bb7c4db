"""intake-resonance: ALS RSoXS beamtimes as intake catalogs and xarray Datasets.

Three ways in:

- intake: ``intake.open_resonance_beamtime("bt.db")`` or a YAML catalog;
- xarray: ``xr.open_dataset("bt.db", engine="resonance", group=uid)``;
- the beamline's API: ``from intake_resonance import Catalog``.

Importing the package loads nothing but this file: each public name is
imported from its module on first use, so ``import intake_resonance`` stays
fast and xarray's engine discovery does not pull in intake, matplotlib or
the command line.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("intake-resonance")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

#: Public name -> the module (relative to this package) that defines it.
_LAZY: dict[str, str] = {
    "BadJSONError": "errors",
    "BeamtimeBusyError": "errors",
    "BeamtimeDataError": "errors",
    "BeamtimeError": "errors",
    "BeamtimeFormatError": "errors",
    "BeamtimeNotFoundError": "errors",
    "FrameDecodeError": "errors",
    "FrameIndexError": "errors",
    "FrameMismatchError": "errors",
    "FramesMissingError": "errors",
    "RunNotFoundError": "errors",
    "LayoutError": "errors",
    "StoreEscapeError": "errors",
    "SearchCriterionError": "errors",
    "Finding": "check",
    "check": "check",
    "open_run_dataset": "dataset",
    "open_run_tree": "dataset",
    "Catalog": "facade",
    "LazyImageSequence": "facade",
    "Run": "facade",
    "RunSummary": "facade",
    "SampleMetadata": "facade",
    "FrameStack": "frames",
    "BeamtimeCatalog": "intake_drivers",
    "BeamtimesCatalog": "intake_drivers",
    "RunSource": "intake_drivers",
    "stack_runs": "stacking",
    "BeamtimeWriter": "writer",
}

__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

