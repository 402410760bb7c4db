"""Layer 2, Datasets: one run and one stream as an :class:`xarray.Dataset`.

:mod:`.attrs` (netCDF-safe attributes), :mod:`.layout` (what a Dataset will
hold, without reading it), :mod:`.build` (the lazy builder),
:mod:`.location` (a run inside an open beamtime), :mod:`.groups` (a run's
streams as DataTree groups), :mod:`.engine` (the xarray engine's core),
:mod:`.open` (the one way in every face uses) and :mod:`.stacking`.
"""
