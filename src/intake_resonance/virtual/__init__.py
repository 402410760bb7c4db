"""A beamtime as a virtual Zarr: an Icechunk repository any Zarr reader opens, frames left where they are.

Layer 4, between ``analysis`` and ``faces`` (:mod:`intake_resonance.layers`):
it builds on the Datasets of :mod:`intake_resonance.datasets` and needs the
``virtual`` extra (``virtualizarr``, ``icechunk``, ``obstore``), imported
only when these modules are used.

- :mod:`.chunks`: each frame of a stream mapped to its chunk file (a
  VirtualiZarr ``ManifestArray``), or a clear refusal;
- :mod:`.dataset`: one run and stream as a virtual Dataset (scalars and
  attrs as :func:`~intake_resonance.datasets.open.open_run_dataset` gives them);
- :mod:`.repository`: the Icechunk repository (target checks, the virtual
  chunk container authorised for the beamtime's store);
- :mod:`.write`: :func:`virtualize`, new runs and new events of open runs
  appended as a new commit;
- :mod:`.parser`: :class:`ResonanceParser`, VirtualiZarr's parser protocol.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ResonanceParser", "VirtualizeReport", "open_virtual_session", "virtualize"]

_NAMES = {
    "ResonanceParser": ".parser",
    "VirtualizeReport": ".write",
    "virtualize": ".write",
    "open_virtual_session": ".repository",
}


def __getattr__(name: str) -> Any:
    import importlib

    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
