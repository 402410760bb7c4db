"""intake 2 datatypes: a beamtime ``.db`` (recognised by content) and a folder of beamtimes."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlsplit

from intake.readers.datatypes import FileData, SQLite

__all__ = ["BEAMTIME_SCHEMA", "Beamtime", "BeamtimeFolder", "check_local", "local_path"]

#: The reader a Beamtime gives by default, by name (intake imports it when asked).
_DEFAULT_READER = "intake_resonance.faces.intake_readers.beamtime:BeamtimeReader"


def _create_table(name: str) -> bytes:
    # sqlite_master keeps each CREATE TABLE as written (minus IF NOT EXISTS), names maybe quoted.
    return rb'(?=.*?CREATE\s+TABLE\s+["`\[]?' + name.encode() + rb'["`\]]?\s*\()'


#: The file header and every beamtime table in the schema text (page 1 of the file).
#: Anchored at the start, so intake's ``re.findall`` over the head stays linear.
BEAMTIME_SCHEMA = rb"(?is)\ASQLite format 3\x00" + b"".join(
    _create_table(t) for t in ("image_refs", "streams", "events", "runs", "samples")
)


#: The file header and every beamtime table in the schema text (page 1 of the file).
#: Anchored at the start, so intake's ``re.findall`` over the head stays linear.
BEAMTIME_SCHEMA = rb"(?is)\ASQLite format 3\x00" + b"".join(
    _create_table(t) for t in ("image_refs", "streams", "events", "runs", "samples")
)


def local_path(url: Any) -> str:
    """The local path a datatype's ``url`` names (a path or a ``file://`` URL).

    intake's ``{CATALOG_DIR}`` is a ``file://`` URL; SQLite can only open
    local files, so other protocols are refused.
    """
    from ...beamtime.errors import BeamtimeError

    if isinstance(url, (list, tuple)):
        if len(url) != 1:
            raise BeamtimeError(f"one beamtime per reader, got {len(url)} urls: {list(url)}")
        url = url[0]
    text = str(os.fspath(url))
    if text.startswith("file://"):
        # {CATALOG_DIR}/../x.db: normalised, so attrs name the file as a path would
        return str(os.path.normpath(unquote(urlsplit(text).path)))
    if "://" in text or "::" in text:
        raise BeamtimeError("beamtimes are read from local files only (SQLite cannot open a remote file)", text)
    return text


def check_local(data: FileData) -> str:
    from ...beamtime.errors import BeamtimeError

    """The local path of ``data``, refusing storage options (beamtimes are local files)."""
    if data.storage_options:
        raise BeamtimeError(f"storage_options {data.storage_options!r} do not apply to local beamtime files", data.url)
    return local_path(data.url)


class Beamtime(SQLite):
    """A beamtime ``.db`` (its ``.zarr`` store beside it).

    Recognised by content, never by name: the SQLite header followed by the
    ``image_refs``, ``streams``, ``events``, ``runs`` and ``samples`` tables
    in the schema at the head of the file. intake treats a file pattern
    alone as a match, so this type has none (``*.db`` would claim every
    SQLite file).

    Parameters
    ----------
    url : str
        Path of the ``.db`` (or a ``file://`` URL).
    storage_options : dict, optional
        Must be empty: beamtimes are local files.
    metadata : dict, optional
    """

    filepattern = ""
    magic = {(None, BEAMTIME_SCHEMA)}
    structure = {"catalog", "table", "array"}

    def to_reader_cls(self, outtype: tuple[str] | str | None = None, reader: tuple[str] | str | type | None = None) -> Any:
        """Reader class for ``outtype`` or ``reader``; by default the catalog of runs.

        intake would otherwise pick the first importable reader in set order.
        """
        if not outtype and not reader:
            reader = _DEFAULT_READER
        return super().to_reader_cls(outtype, reader)


class BeamtimeFolder(FileData):
    """A folder of beamtimes: every ``*.db`` directly in it, named by file stem.

    Not recommended by intake on its own (a folder with any ``.db`` would
    match); make it directly: ``BeamtimeFolder("/data/2026-03")``.
    """

    structure = {"catalog"}
