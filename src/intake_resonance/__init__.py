"""intake-resonance: ALS RSoXS beamtimes as intake catalogs and xarray Datasets.

Three ways in, and one way out:

- intake: ``intake.open_resonance_beamtime("bt.db")`` or a YAML catalog;
- xarray: ``xr.open_dataset("bt.db", engine="resonance", group=uid)``;
- the beamline's API: ``from intake_resonance import Catalog``;
- virtual Zarr: ``virtualize("bt.db", "bt.icechunk")`` writes an Icechunk
  repository any Zarr reader opens (extra ``virtual``).

Importing the package loads nothing but this file: each public name is
imported from its module on first use, so ``import intake_resonance`` stays
fast and xarray's engine discovery does not pull in intake, matplotlib or
the command line.

The sub-packages are the layers, lowest first (:mod:`.layers`): ``beamtime``
(files on disk), ``datasets`` (a run as a Dataset), ``analysis``,
``virtual`` (a beamtime as a virtual Zarr), ``faces`` (xarray, intake,
tiled, the beamline's API) and ``tools`` (CLI, demo, writer, checker).
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__ as __version__

#: Public name -> the module (relative to this package) that defines it.
_LAZY: dict[str, str] = {
    "BadJSONError": "beamtime.errors",
    "BadTextError": "beamtime.errors",
    "BeamtimeBusyError": "beamtime.errors",
    "BeamtimeDataError": "beamtime.errors",
    "BeamtimeError": "beamtime.errors",
    "BeamtimeFormatError": "beamtime.errors",
    "BeamtimeNotFoundError": "beamtime.errors",
    "BeamtimeReplacedError": "beamtime.errors",
    "FrameDecodeError": "beamtime.errors",
    "FrameIndexError": "beamtime.errors",
    "FrameMismatchError": "beamtime.errors",
    "FramesMissingError": "beamtime.errors",
    "RunNotFoundError": "beamtime.errors",
    "LayoutError": "beamtime.errors",
    "StoreEscapeError": "beamtime.errors",
    "SearchCriterionError": "beamtime.errors",
    "UnfinishedWriteError": "beamtime.errors",
    "NotVirtualizableError": "beamtime.errors",
    "VirtualTargetError": "beamtime.errors",
    "Finding": "tools.check",
    "check": "tools.check",
    "open_run_dataset": "datasets.open",
    "open_run_tree": "datasets.open",
    "Catalog": "faces.facade",
    "LazyImageSequence": "faces.facade",
    "Run": "faces.facade",
    "RunSummary": "faces.facade",
    "SampleMetadata": "faces.facade",
    "FrameStack": "beamtime.frames",
    "BeamtimeCatalog": "faces.intake_drivers",
    "BeamtimesCatalog": "faces.intake_drivers",
    "RunSource": "faces.intake_drivers",
    "stack_runs": "datasets.stacking",
    "stack_many": "datasets.many",
    "events_frame": "datasets.many",
    "open_many": "datasets.many",
    "RunSet": "datasets.runset",
    "BeamtimeWriter": "tools.writer",
    "virtualize": "virtual.write",
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

