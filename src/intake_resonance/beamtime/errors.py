"""One family of errors for everything that can go wrong with a beamtime.

Every error names the file it is about and, where one is known, the run uid,
stream, seq_num and field, so a message alone tells a user where to look.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "BeamtimeError",
    "BeamtimeNotFoundError",
    "BeamtimeFormatError",
    "BeamtimeBusyError",
    "UnfinishedWriteError",
    "BeamtimeReplacedError",
    "BeamtimeDataError",
    "BadJSONError",
    "BadTextError",
    "FramesMissingError",
    "FrameIndexError",
    "FrameMismatchError",
    "FrameDecodeError",
    "StoreEscapeError",
    "RunNotFoundError",
    "LayoutError",
    "SearchCriterionError",
    "NotVirtualizableError",
    "VirtualTargetError",
]


def _where(
    path: str | Path | None,
    *,
    run: str | None = None,
    stream: str | None = None,
    seq_num: int | None = None,
    field: str | None = None,
) -> str:
    parts = []
    if path is not None:
        parts.append(str(path))
    for label, value in (("run", run), ("stream", stream), ("seq_num", seq_num), ("field", field)):
        if value is not None:
            parts.append(f"{label} {value}")
    return ", ".join(parts)


class BeamtimeError(Exception):
    """Base class of every error intake-resonance raises about a beamtime.

    Parameters
    ----------
    message : str
        What was expected and what was found.
    path : str or Path, optional
        The ``.db`` file or ``.zarr`` store the error is about.
    run, stream, seq_num, field : optional
        Where inside the beamtime the problem is, when known.
    """

    def __init__(
        self,
        message: str,
        path: str | Path | None = None,
        *,
        run: str | None = None,
        stream: str | None = None,
        seq_num: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.run = run
        self.stream = stream
        self.seq_num = seq_num
        self.field = field
        where = _where(path, run=run, stream=stream, seq_num=seq_num, field=field)
        super().__init__(f"{where}: {message}" if where else message)

    def __str__(self) -> str:  # FileNotFoundError would otherwise print errno fields
        return str(self.args[0]) if self.args else self.message

    def __reduce__(self) -> tuple[Any, ...]:  # keep keyword context across pickling (dask workers)
        return (
            _rebuild,
            (type(self), self.message, self.path, self.run, self.stream, self.seq_num, self.field),
        )


def _rebuild(
    cls: type[BeamtimeError], message: str, path: Any, run: Any, stream: Any, seq_num: Any, field: Any
) -> BeamtimeError:
    return cls(message, path, run=run, stream=stream, seq_num=seq_num, field=field)


class BeamtimeNotFoundError(BeamtimeError, FileNotFoundError):
    """The beamtime file (or its Zarr store) does not exist."""


class BeamtimeFormatError(BeamtimeError):
    """The file is not a beamtime we can read: not SQLite, tables or columns
    missing, or a schema version newer than this package knows."""


class BeamtimeBusyError(BeamtimeError):
    """A writer holds the database locked for longer than the reader waits.

    Nothing is wrong with the file: try again once the writer has committed.
    How long a reader waits is ``dask.config`` ``resonance.busy-timeout``
    (seconds).
    """


class UnfinishedWriteError(BeamtimeBusyError):
    """A writer stopped in the middle of a transaction and left its ``-journal`` behind (a "hot" journal).

    Nothing is wrong with the file: SQLite must roll the unfinished
    transaction back before anyone reads it, and a read-only reader never
    writes. Opening the beamtime once read-write where it lies (the
    beamline's software, or ``sqlite3 NAME.db 'PRAGMA quick_check'``) rolls
    it back; then it reads again.
    """


class BeamtimeReplacedError(BeamtimeError):
    """The ``.db`` or its ``.zarr`` store was deleted, or replaced by another, after a lazy Dataset was opened on it.

    Its frame references belong to the old files: frames are not read, and
    the Dataset must be opened again.
    """


class RunNotFoundError(BeamtimeError, KeyError):
    """No run (or stream) matches the uid, prefix or position asked for."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return BeamtimeError.__str__(self)


class BeamtimeDataError(BeamtimeError):
    """The beamtime is readable but a row or frame in it is broken."""


class BadJSONError(BeamtimeDataError, ValueError):
    """A JSON column (event data, descriptor, metadata) does not decode.

    Also a ``ValueError``, as ``json.JSONDecodeError`` is: scripts written
    against the beamline's reader that catch ``ValueError`` keep working.
    """


class BadTextError(BeamtimeDataError, ValueError):
    """A text column holds bytes that are not UTF-8 (SQLite stores whatever it is given).

    Event data that is not UTF-8 is a :class:`BadJSONError` naming its event;
    this is the error for the other columns.
    """


class FramesMissingError(BeamtimeDataError):
    """The Zarr store, or an array in it, that a reference points to is absent."""


class FrameIndexError(BeamtimeDataError, IndexError):
    """An ``index_in_stack`` lies beyond the end of its Zarr array."""


class FrameMismatchError(BeamtimeDataError):
    """A stored frame's shape or dtype disagrees with its ``image_refs`` row."""


class FrameDecodeError(BeamtimeDataError):
    """A referenced frame's stored bytes do not decode into the frame: a
    truncated or garbled chunk, a chunk of the wrong size, a codec that fails,
    or a folder where a chunk file should be."""


class StoreEscapeError(BeamtimeDataError):
    """A ``zarr_group``, or a link inside the Zarr store, leads outside the store."""


class LayoutError(BeamtimeError, ValueError):
    """Runs cannot be laid out as asked: a coordinate to align or index on is
    missing or repeats, frame shapes differ, or detector geometry is missing."""


class SearchCriterionError(BeamtimeError, ValueError):
    """A search criterion has a value of the wrong type (a dict where a name
    belongs, a list where ``metadata`` wants a dict); the message names the criterion."""


class NotVirtualizableError(BeamtimeError):
    """A run's frames cannot be written as virtual Zarr chunks exactly as they are.

    Raised by :func:`intake_resonance.virtualize` when an image field's stored
    chunks do not map one-to-one onto its frames (chunks holding more or less
    than one frame, arrays of one field with different codecs, storage
    transformers), or the store's path cannot be written as a chunk URL.
    Nothing is written for that run; ``skip_unmappable=True`` skips it and
    goes on.
    """


class VirtualTargetError(BeamtimeError):
    """The target of :func:`intake_resonance.virtualize` is not a place to write a repository.

    The target lies inside a beamtime's ``.zarr`` store, is or holds the
    beamtime's files, or already holds something other than a virtual
    repository of this beamtime written by intake-resonance.
    """
