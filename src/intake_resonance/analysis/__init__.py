"""Layer 3, analysis on Datasets: :mod:`.pyhyper` (PyHyperScattering's layout) and :mod:`.plot`."""
