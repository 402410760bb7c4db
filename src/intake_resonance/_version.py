"""The installed distribution's version, below every layer so any may show it."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("intake-resonance")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
