"""Intake drivers: a beamtime is a catalog of runs, a folder a catalog of beamtimes.

Registered in the ``intake.drivers`` entry-point group, so intake offers
``intake.open_resonance_beamtime``, ``intake.open_resonance_beamtimes`` and
``intake.open_resonance_run``, and YAML catalogs can name the drivers.
The classes are thin: keys, listing, search, the runs table and many-run
reads are :class:`intake_resonance.datasets.runset.RunSet`'s, Datasets come
from the one builder (:mod:`intake_resonance.datasets.open`).

Catalog behaviour
-----------------
- Runs are listed oldest first; ``cat[-1]`` is the newest. A run is found
  by uid, a unique uid prefix of 6+ characters, or an integer position.
- Entries are made only when asked for: listing 10 000 runs builds a list
  of uids, not 10 000 entries.
- Every call sees the newest committed state of the beamtime (and the
  folder's files as they are now): nothing to reload.
"""

from .beamtime import BeamtimeCatalog
from .folder import BeamtimesCatalog
from .run import RunSource

__all__ = ["RunSource", "BeamtimeCatalog", "BeamtimesCatalog"]
