"""Module paths from before the layer folders, kept importable.

Until 0.1 the package was one flat folder (``intake_resonance.facade``,
``intake_resonance.records``, ...). Scripts, YAML catalogs (intake 2 stores
``module:Class`` text), tiled configs and pickled dask graphs may name those
paths. :class:`MovedFinder` answers an import of an old path, or of anything
under it, with the module at its new path: the same module object, so
classes, ``isinstance`` checks and monkeypatching agree whichever path was
used.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

__all__ = ["MOVED", "MovedFinder", "install"]

#: Old module (relative to the package) -> where it lives now.
MOVED: dict[str, str] = {
    "errors": "beamtime.errors",
    "names": "beamtime.names",
    "sql_functions": "beamtime.sql_functions",
    "store": "beamtime.store",
    "format": "beamtime.format",
    "records": "beamtime.records",
    "zstd_frames": "beamtime.zstd_frames",
    "frames": "beamtime.frames",
    "attrs": "datasets.attrs",
    "build": "datasets.build",
    "layout": "datasets.layout",
    "dataset": "datasets.open",
    "stacking": "datasets.stacking",
    "pyhyper": "analysis.pyhyper",
    "plot": "analysis.plot",
    "xarray_backend": "faces.xarray_backend",
    "intake_drivers": "faces.intake_drivers",
    "intake_readers": "faces.intake_readers",
    "tiled": "faces.tiled",
    "facade": "faces.facade",
    "writer": "tools.writer",
    "check": "tools.check",
    "demo": "tools.demo",
    "cli": "tools.cli",
    "cli_output": "tools.cli_output",
}

_PACKAGE = __name__.rpartition(".")[0]


def new_path(fullname: str) -> str | None:
    """The current dotted path of ``fullname`` if it is (under) a moved module, else None."""
    prefix = _PACKAGE + "."
    if not fullname.startswith(prefix):
        return None
    head, dot, tail = fullname[len(prefix) :].partition(".")
    moved = MOVED.get(head)
    return None if moved is None else prefix + moved + dot + tail


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target
        self._spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.target)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The target ran when it was imported: running it again under the old
        # name would make a second copy of every class. The import system has
        # stamped the old name's spec on it meanwhile; the module keeps its own.
        module.__spec__ = self._spec


class MovedFinder(importlib.abc.MetaPathFinder):
    """Finds old module paths and hands out the module at the new path."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        new = new_path(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new))


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedFinder())
