"""A folder of beamtimes: which files are its beamtimes, and what they are called."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .errors import BeamtimeNotFoundError

__all__ = ["beamtime_files", "folder_entry_name"]


def beamtime_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Every beamtime of ``folder``: the regular ``*.db`` files directly in it, sorted by name.

    A catalog names each by its stem (``data/beamtime.db`` -> ``beamtime``).
    Files are only listed here, not opened: a ``.db`` that is not a beamtime
    fails when it is opened, with its own message.

    Raises
    ------
    BeamtimeNotFoundError
        ``folder`` is not an existing folder.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise BeamtimeNotFoundError("folder of beamtimes does not exist", root)
    return sorted(p for p in root.glob("*.db") if p.is_file())


def folder_entry_name(stems: Iterable[str]) -> str:
    """The name of a whole-folder entry beside one entry per beamtime stem: ``beamtimes``, unless a beamtime has it."""
    return "beamtimes_folder" if "beamtimes" in set(stems) else "beamtimes"
