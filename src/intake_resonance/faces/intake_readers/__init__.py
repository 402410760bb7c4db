"""intake 2 readers: a beamtime datatype, run readers and catalogs of runs.

intake 2's own model, beside the v1 drivers of :mod:`..intake_drivers`. intake imports this module at its own import time (the
``intake.imports`` entry point), so it only defines classes: xarray, dask,
NumPy and our reading layers are imported inside the methods that need them.

Datatypes
---------
:class:`Beamtime`
    A beamtime ``.db``, recognised by content: the SQLite header and the
    beamtime tables in the schema, so ``intake.datatypes.recommend(path)``
    offers it for a beamtime and not for any other SQLite file.
:class:`BeamtimeFolder`
    A folder of beamtimes (``NAME.db`` + ``NAME.zarr`` pairs).

Readers
-------
:class:`RunReader` (a run -> ``xarray:Dataset``), :class:`RunTreeReader`
(a run -> ``xarray:DataTree``), :class:`BeamtimeReader` (a beamtime ->
:class:`RunCatalog`, whose ``search`` runs in SQL) and
:class:`BeamtimeFolderReader` (a folder -> a Catalog of beamtime readers).
The run readers call :func:`intake_resonance.open_run_dataset` and
:func:`intake_resonance.open_run_tree`, so their Datasets are the ones every
other face gives.

>>> import intake                                                       # doctest: +SKIP
>>> Beamtime in intake.datatypes.recommend("bt.db")                     # doctest: +SKIP
True
>>> runs = Beamtime("bt.db").to_reader().read()                         # doctest: +SKIP
>>> ds = runs.search(plan_name="rsoxs")[-1].read()                      # doctest: +SKIP
"""

# Importing the modules registers their classes with intake.
from .beamtime import BeamtimeFolderReader, BeamtimeReader, folder_catalog
from .catalog import RunCatalog
from .datatypes import BEAMTIME_SCHEMA, Beamtime, BeamtimeFolder, local_path
from .runs import RunReader, RunTreeReader

__all__ = [
    "BEAMTIME_SCHEMA",
    "Beamtime",
    "BeamtimeFolder",
    "RunReader",
    "RunTreeReader",
    "BeamtimeReader",
    "BeamtimeFolderReader",
    "RunCatalog",
    "folder_catalog",
    "local_path",
]
