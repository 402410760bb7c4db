"""The package's layers, lowest first: the one place their order is written down.

Each layer is a sub-package and imports only from the layers listed before
it (``tests/test_layers.py`` walks every import and holds the code to this;
the README's "How it is built" shows the same table). Modules at the top of
the package are the front door (``__init__``) or below every
layer (``_version``).

========  ==================================================================
layer     what it holds
========  ==================================================================
beamtime  the files on disk: read-only opening, schema, SQL records, the
          Zarr store's boundary, frame reading, errors, safe names
datasets  one run (one stream) -> xarray Dataset: layout, attrs, the lazy
          builder, xarray's engine core, the one way in, stacking
analysis  what scientists do with Datasets: PyHyperScattering, plots
virtual   a beamtime as a virtual Zarr (Icechunk): frames referenced where
          they lie, scalars and attrs as ours, a VirtualiZarr parser
faces     each ecosystem's calls translated into the one way in: the xarray
          engine, intake v1 drivers, intake 2 readers, tiled, the facade
tools     programs built on the faces: the command line, the demo, the
          writer, the checker
========  ==================================================================
"""

from __future__ import annotations

__all__ = ["LAYERS"]

#: Layer sub-packages, lowest first. A module may import from its own layer
#: and from layers before it, never from a layer after it.
LAYERS: tuple[str, ...] = ("beamtime", "datasets", "analysis", "virtual", "faces", "tools")
