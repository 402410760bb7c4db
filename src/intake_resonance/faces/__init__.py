"""Layer 4, the faces: each translates one ecosystem's calls into the one way in.

:mod:`.xarray_backend` (``engine="resonance"``), :mod:`.intake_drivers`
(intake v1), :mod:`.intake_readers` (intake 2), :mod:`.tiled` (serving) and
:mod:`.facade` (the beamline's ``Catalog`` API).
"""
