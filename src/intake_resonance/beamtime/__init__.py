"""Layer 1, the beamtime on disk: the ``.db`` and ``.zarr`` as they are, read-only.

:mod:`.errors` (the one error family), :mod:`.cache` (LRU caches bounded in bytes), :mod:`.names` (safe variable names),
:mod:`.sql_functions`, :mod:`.store` (the Zarr store's boundary),
:mod:`.format` (opening, schema, table and column names), :mod:`.records`
(SQL -> plain values), :mod:`.zstd_frames` and :mod:`.frames` (frames as a
lazy NumPy-like stack). Nothing here imports xarray.
"""
