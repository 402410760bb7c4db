"""intake 2 readers of a beamtime (a :class:`RunCatalog`) and of a folder of beamtimes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from intake.readers.entry import Catalog
from intake.readers.readers import BaseReader

from ...beamtime.folder import beamtime_files, folder_entry_name
from .catalog import RunCatalog
from .datatypes import Beamtime, BeamtimeFolder, check_local

__all__ = ["BeamtimeFolderReader", "BeamtimeReader", "folder_catalog"]


class BeamtimeReader(BaseReader):
    """A beamtime as a :class:`RunCatalog` of run readers, oldest first.

    Keywords: ``criteria`` (a dict or list of dicts, as ``RunCatalog.search``
    takes them: the catalog is narrowed to them in SQL), ``stream`` and
    ``chunks`` (given to every run reader).
    """

    implements = {Beamtime}
    imports = {"numpy", "orjson"}  # what listing and describing runs needs; reading a run needs more
    output_instance = "intake_resonance.faces.intake_readers:RunCatalog"

    def _read(self, data: Beamtime, criteria: Any = None, stream: str = "primary", chunks: Any = None) -> RunCatalog:
        return RunCatalog.from_beamtime(data, criteria=criteria, stream=stream, chunks=chunks)


class BeamtimeFolderReader(BaseReader):
    """A folder as an intake ``Catalog`` of :class:`BeamtimeReader` entries, named by file stem, sorted.

    Keywords ``stream`` and ``chunks`` are given to every beamtime reader.
    Files are only listed, not opened.
    """

    implements = {BeamtimeFolder}
    output_instance = "intake.readers.entry:Catalog"

    def _read(self, data: BeamtimeFolder, stream: str = "primary", chunks: Any = None) -> Catalog:
        folder = Path(check_local(data)).expanduser()
        files = beamtime_files(folder)
        cat = Catalog(metadata={"description": f"Beamtimes in {folder}", "folder": str(data.url)})
        for db in files:
            _add_named(cat, db.stem, BeamtimeReader(data=Beamtime(str(db)), stream=stream, chunks=chunks))
        return cat


def _add_named(cat: Catalog, name: str, entry: Any) -> None:
    # Catalog.add_entry(entry, name) keys the entry by name but adds no alias,
    # so the entry would not be listed: key it by token and alias the name.
    cat.aliases[name] = cat.add_entry(entry)


def folder_catalog(folder: str | os.PathLike[str], *, stream: str = "primary") -> Catalog:
    """An intake 2 Catalog for every beamtime ``*.db`` in ``folder`` (paths absolute).

    One :class:`BeamtimeReader` per file, named by its stem, and a
    :class:`BeamtimeFolderReader` for the whole folder, named ``beamtimes``
    (``beamtimes_folder`` if a file is called ``beamtimes.db``). Save it
    with ``to_yaml_file`` and open it with ``intake.from_yaml_file``.
    """
    root = Path(folder).expanduser().resolve()
    cat = Catalog(metadata={"description": f"ALS RSoXS beamtimes in {root}"})
    files = beamtime_files(root)
    for db in files:
        _add_named(cat, db.stem, BeamtimeReader(data=Beamtime(str(db)), stream=stream))
    name = folder_entry_name(db.stem for db in files)
    _add_named(cat, name, BeamtimeFolderReader(data=BeamtimeFolder(str(root)), stream=stream))
    return cat
