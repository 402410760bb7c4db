"""The beamline's own reader API (``Catalog``, ``Run``, ...) as a facade.

Users of the ALS 11.0.1.2 RSoXS control software already have scripts written
against its small reader: ``Catalog(db_path)``, ``recent()``, ``by_sample()``,
``catalog[uid]``, ``run.table()`` and ``run.images()``. This module offers the
same names, fields, values and dtypes, but reads through the layers below
(:mod:`~intake_resonance.beamtime.format`, :mod:`~intake_resonance.beamtime.records`,
:mod:`~intake_resonance.beamtime.frames`), so it shares their read-only opening, their
error family and their vectorised decoding. It never writes SQL itself.

Differences from the beamline reader, all on inputs it cannot handle:

- paths holding ``#``, ``?``, ``%`` or spaces open (the URI is quoted);
- a missing ``.db`` raises :class:`~intake_resonance.beamtime.errors.BeamtimeNotFoundError`
  instead of creating nothing and failing later;
- image indices may be NumPy integers; ``bool`` indices are refused;
- frames are read from a missing ``.zarr`` store only when indexed, and then
  raise :class:`~intake_resonance.beamtime.errors.FramesMissingError`;
- using a closed catalog (or its runs' ``table``/``images``/``sample``)
  raises ``ValueError``.
"""

from .catalog import Catalog
from .images import LazyImageSequence
from .run import Run
from .summaries import RunSummary, SampleMetadata

__all__ = ["Catalog", "Run", "RunSummary", "SampleMetadata", "LazyImageSequence"]
