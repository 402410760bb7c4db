"""Layer 2, Datasets: one run and one stream as an :class:`xarray.Dataset`.

:mod:`.attrs` (netCDF-safe attributes), :mod:`.layout` (what a Dataset will
hold, without reading it), :mod:`.build` (the lazy builder),
:mod:`.location` (opening a beamtime), :mod:`.groups` (a run's streams as
DataTree groups), :mod:`.engine` (the xarray engine's core),
:mod:`.open` (the way in every face calls), :mod:`.stacking`,
:mod:`.many` (many runs in one read) and :mod:`.runset` (the catalog model
every face translates).
"""
