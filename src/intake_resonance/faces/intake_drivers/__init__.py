"""Intake drivers: a beamtime is a catalog of runs, a folder a catalog of beamtimes.

Registered in the ``intake.drivers`` entry-point group, so intake offers
``intake.open_resonance_beamtime``, ``intake.open_resonance_beamtimes`` and
``intake.open_resonance_run``, and YAML catalogs can name the drivers.
The classes are thin: keys, listing, search and the runs table are
:mod:`intake_resonance.datasets.listing`'s, Datasets come from the one way
in (:mod:`intake_resonance.datasets.open`).

Catalog behaviour
-----------------
- Runs are listed oldest first; ``cat[-1]`` is the newest. A run is found
  by uid, a unique uid prefix of 6+ characters, or an integer position.
- Entries are made only when asked for: listing 10 000 runs builds a list
  of uids, not 10 000 entries.
- ``reload()`` re-reads at once; reads between reloads re-read by
  themselves once ``ttl`` seconds have passed (intake's rule).
"""

from .beamtime import BeamtimeCatalog
from .folder import BeamtimesCatalog
from .run import RunSource

__all__ = ["RunSource", "BeamtimeCatalog", "BeamtimesCatalog"]
