"""The beamtime file format: read-only opening and the schema check.

This is the only module that knows how a beamtime is laid out on disk: which
tables and columns must exist, which schema versions we read, where the Zarr
store lives and how a ``zarr_group`` maps to a path inside it. Nothing here
ever writes: SQLite is opened through a ``file:`` URI with ``mode=ro`` and the
Zarr store through a read-only :class:`~intake_resonance.beamtime.store.BeamtimeStore`,
which never reads outside the store.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from . import sql_functions
from .errors import (
    BadTextError,
    BeamtimeBusyError,
    BeamtimeFormatError,
    BeamtimeNotFoundError,
    FrameMismatchError,
    StoreEscapeError,
    UnfinishedWriteError,
)

if TYPE_CHECKING:
    from .store import BeamtimeStore

__all__ = [
    "SCHEMA_VERSION", "REQUIRED_COLUMNS", "COMPANIONS", "Database", "zarr_path_for", "array_path", "busy_timeout",
    "file_identity", "irregular_companion", "read_head",
]

#: Newest schema version this package reads (``PRAGMA user_version``).
SCHEMA_VERSION = 2

#: Columns every readable beamtime has (schema 1); schema 2 adds
#: ``image_refs.compression_codec``, which we never need.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "samples": ("id", "name", "formula", "serial", "tags", "beamline_pos", "extra"),
    "runs": (
        "uid",
        "sample_id",
        "plan_name",
        "time_start",
        "time_stop",
        "exit_status",
        "num_events",
        "operator",
        "metadata",
    ),
    "streams": ("uid", "run_uid", "name", "data_keys", "time_created"),
    "events": ("uid", "stream_uid", "seq_num", "time", "data", "timestamps"),
    "image_refs": (
        "id",
        "event_uid",
        "field_name",
        "zarr_group",
        "index_in_stack",
        "shape_x",
        "shape_y",
        "dtype",
    ),
}


def busy_timeout() -> float:
    """Seconds a read waits for a writer's lock before :class:`BeamtimeBusyError`.

    ``dask.config`` ``resonance.busy-timeout``; 10 by default.
    """
    import dask.config

    return float(dask.config.get("resonance.busy-timeout", 10.0))


def _is_unfinished_write(exc: sqlite3.Error) -> bool:
    # SQLITE_READONLY_ROLLBACK: a hot journal that a read-only connection may not roll back.
    return getattr(exc, "sqlite_errorname", None) == "SQLITE_READONLY_ROLLBACK"


def _is_busy(exc: sqlite3.Error) -> bool:
    # Extended codes (SQLITE_BUSY_SNAPSHOT, ...) keep the primary code in the low byte.
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


#: What SQLite opens beside a database: a pipe or device there would block every open.
COMPANIONS = ("-journal", "-wal", "-shm")


def read_head(path: str | Path, offset: int, size: int) -> bytes:
    """``size`` bytes at ``offset`` of the regular file ``path``; a pipe or device is an ``OSError``, never a wait.

    Opened non-blocking and checked with ``fstat`` before anything is read:
    opening a named pipe for reading would otherwise wait for a writer, and a
    character device never ends.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a pipe, socket or device)", str(path))
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)


def irregular_companion(path: Path) -> Path | None:
    """A ``-journal``, ``-wal`` or ``-shm`` beside ``path`` that exists but is not a regular file; None if there is none."""
    for suffix in COMPANIONS:
        companion = path.with_name(path.name + suffix)
        try:
            mode = os.stat(companion).st_mode
        except OSError:
            continue
        if not stat.S_ISREG(mode):
            return companion
    return None


def file_identity(path: Path) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the file at ``path`` now (links followed), or None if there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def zarr_path_for(db_path: str | Path) -> Path:
    """Return the Zarr store that belongs to a beamtime database.

    Parameters
    ----------
    db_path : str or Path
        The beamtime's ``.db`` file.

    Returns
    -------
    Path
        ``db_path`` with its suffix replaced by ``.zarr``.
    """
    return Path(db_path).with_suffix(".zarr")


def array_path(store: str | Path, zarr_group: str, **where: Any) -> Path:
    """Map a ``zarr_group`` from ``image_refs`` to a directory inside the store.

    The check happens before anything is opened: a group that is absolute,
    has ``.``/``..`` or empty segments, or resolves (through links) to a place
    outside the store is refused, even if something readable is there.

    Parameters
    ----------
    store : str or Path
        The beamtime's ``.zarr`` directory.
    zarr_group : str
        The array's path inside the store, e.g. ``runs/<uid>/detector_image``.
    **where
        ``run``, ``stream``, ``seq_num``, ``field`` for the error message.

    Returns
    -------
    Path
        The array's directory.

    Raises
    ------
    StoreEscapeError
        If the group leaves the store.
    FrameMismatchError
        If the group is not text (a BLOB) or holds a NUL character.
    """
    root = Path(store)
    if not isinstance(zarr_group, str) or "\0" in zarr_group:
        found = f"a {type(zarr_group).__name__} ({zarr_group!r})" if not isinstance(zarr_group, str) else "a NUL character"
        raise FrameMismatchError(f"image_refs zarr_group must be a text path, found {found}", root, **where)
    parts = PurePosixPath(zarr_group).parts if zarr_group else ()
    bad = (
        not zarr_group
        or zarr_group.startswith("/")
        or "\\" in zarr_group
        or any(p in ("", ".", "..") for p in zarr_group.split("/"))
    )
    if not bad:
        resolved_root = root.resolve()
        target = resolved_root.joinpath(*parts).resolve()
        bad = not target.is_relative_to(resolved_root) or target == resolved_root
    if bad:
        raise StoreEscapeError(
            f"zarr_group {zarr_group!r} points outside the Zarr store {root}; refusing to read it",
            root,
            **where,
        )
    return root.joinpath(*parts)


class _ConnectionSlot:
    """The open connection of one :class:`Database`, closable without the Database (by its finaliser)."""

    __slots__ = ("conn",)

    def __init__(self) -> None:
        self.conn: sqlite3.Connection | None = None

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()


class Database:
    """A read-only handle on a beamtime's SQLite database.

    The connection opens lazily, is shared between threads behind a lock, and
    is dropped when pickled, so a ``Database`` can travel to dask workers.
    Every query fetches all its rows before returning: an unfinished cursor
    would hold a read lock that can make the beamline's writer wait.

    A context manager: ``with Database(path) as db:`` closes the connection
    at the end of the block (the next query would open a new one).

    Parameters
    ----------
    path : str or Path
        The beamtime's ``.db`` file.

    Notes
    -----
    A WAL-mode database is read through SQLite's ``-shm`` index, which SQLite
    creates beside the file when the folder is writable. In a folder we
    cannot write, a WAL database without a ``-wal`` file (so no writer has it
    open) is read as an immutable snapshot, and read live again as soon as a
    ``-wal`` file appears.

    Raises
    ------
    BeamtimeNotFoundError
        If the file does not exist (nothing is created).
    BeamtimeFormatError
        If it is not SQLite, lacks a table or column, or has a schema newer
        than :data:`SCHEMA_VERSION`.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().absolute()  # the same file after a chdir
        if not self.path.is_file():
            if self.path.is_dir():
                what = "is a directory, not a beamtime .db file"
            else:
                what = "is not a regular file (a pipe, socket or device)" if self.path.exists() else "does not exist"
            raise BeamtimeNotFoundError(f"beamtime database {what}", self.path)
        self._slot = _ConnectionSlot()
        self._immutable = False
        self._identity: tuple[int, int] | None = None
        self._lock = threading.RLock()
        self._finalize()
        try:
            self.schema_version = self._check_schema()
        except BaseException:
            self.close()  # a file that is not a beamtime leaves no connection behind
            raise

    # -- connection -------------------------------------------------------
    @property
    def zarr_path(self) -> Path:
        """Path: the ``.zarr`` store beside the database."""
        return zarr_path_for(self.path)

    @property
    def _wal_path(self) -> Path:
        return self.path.with_name(self.path.name + "-wal")

    def _is_wal_file(self) -> bool:
        # Header bytes 18/19 (file format write/read version) are 2 in WAL mode.
        try:
            head = read_head(self.path, 0, 20)
        except OSError:
            return False
        return len(head) == 20 and head[18] == 2 and head[19] == 2

    def _open(self, immutable: bool) -> sqlite3.Connection:
        # as_uri() percent-quotes '#', '?', '%' and spaces; mode=ro never creates the .db.
        uri = self.path.resolve().as_uri() + ("?mode=ro&immutable=1" if immutable else "?mode=ro")
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=busy_timeout())
        try:
            conn.execute("PRAGMA query_only = ON")
            sql_functions.register(conn)  # text search that reads JSON escapes and folds any letter
            # Touch the schema now, so a file that cannot be read fails here.
            conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None and self._immutable and self._wal_path.exists() and not self._conn.in_transaction:
            # A writer opened the WAL database since: leave the snapshot and read it live.
            self._conn.close()
            self._conn = None
        if self._conn is None:
            odd = irregular_companion(self.path)
            if odd is not None:  # SQLite would open it and wait (a pipe) or read without end (a device)
                raise BeamtimeFormatError(
                    f"{odd.name} beside the database is not a regular file (a pipe, socket or device); refusing to open",
                    self.path,
                )
            try:
                try:
                    conn, immutable = self._open(immutable=False), False
                except sqlite3.OperationalError as exc:
                    if _is_busy(exc):
                        raise
                    # A WAL database in a folder we cannot write: SQLite cannot make
                    # its -shm index. With no -wal file no writer has it open and
                    # every commit is in the .db, so an immutable read is exact.
                    if not self._is_wal_file() or self._wal_path.exists():
                        raise
                    conn, immutable = self._open(immutable=True), True
            except sqlite3.Error as exc:
                if _is_busy(exc):
                    raise self._busy(exc) from exc
                if _is_unfinished_write(exc):
                    raise self._unfinished() from exc
                raise BeamtimeFormatError(f"cannot open as SQLite read-only: {exc}", self.path) from exc
            self._conn, self._immutable = conn, immutable
            self._identity = file_identity(self.path)
        return self._conn

    def query(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read query and return all its rows.

        Parameters
        ----------
        sql : str
            A SELECT statement with ``?`` placeholders.
        params : tuple
            Values for the placeholders (never formatted into ``sql``).

        Returns
        -------
        list of tuple
        """
        with self._lock:
            conn = self._connect()
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                if _is_busy(exc):
                    raise self._busy(exc) from exc
                if _is_unfinished_write(exc):
                    raise self._unfinished() from exc
                if str(exc).startswith("Could not decode to UTF-8"):
                    column = str(exc).split(" with text ")[0].removeprefix("Could not decode to UTF-8").strip()
                    raise BadTextError(f"text that is not UTF-8 in {column or 'a column'}", self.path) from exc
                raise BeamtimeFormatError(f"SQLite error while reading: {exc}", self.path) from exc

    def _unfinished(self) -> UnfinishedWriteError:
        return UnfinishedWriteError(
            f"a writer stopped mid-transaction and left {self.path.name}-journal behind: SQLite must roll it back "
            "before the file can be read, and this reader never writes; open the beamtime once read-write where it "
            f"lies (the beamline's software, or: sqlite3 '{self.path}' 'PRAGMA quick_check'), then read again",
            self.path,
        )

    def _busy(self, exc: sqlite3.Error) -> BeamtimeBusyError:
        return BeamtimeBusyError(
            f"the database is locked by a writer ({exc}; waited {busy_timeout():g} s): try again once it has "
            "committed, or wait longer with dask.config 'resonance.busy-timeout'",
            self.path,
        )

    @property
    def identity(self) -> tuple[int, int] | None:
        """``(st_dev, st_ino)`` of the file the open connection reads (None before the first query)."""
        return self._identity

    def refresh(self) -> bool:
        """Notice a file replaced or deleted since it was opened; cheap (one ``stat``).

        rsync and most copy tools land a new file (a new inode) under the old
        name, and an open SQLite connection keeps reading the old one. When
        the file was replaced, the connection is closed and the new file's
        schema checked; the next query reads the new file.

        Returns
        -------
        bool
            True when the file was replaced (and is now read afresh).

        Raises
        ------
        BeamtimeNotFoundError
            If the file is gone.
        BeamtimeFormatError
            If the new file is not a beamtime.
        """
        with self._lock:
            now = file_identity(self.path)
            if now is None or not self.path.is_file():
                self.close()
                raise BeamtimeNotFoundError("beamtime database was deleted (or moved away) since it was opened", self.path)
            if self._identity is None or now == self._identity:
                return False
            self.close()
            self._identity = None
            self.schema_version = self._check_schema()
            return True

    def state(self) -> tuple[Any, ...]:
        """A key that changes whenever a commit may have changed what a query reads; cheap (two ``stat``, 4 bytes read).

        The file's identity, size and modification time, SQLite's file change
        counter (header bytes 24-27, bumped by every commit in rollback-journal
        mode) and the ``-wal`` file's size and modification time (WAL mode
        appends every commit there). Equal keys, taken by any connection or
        process, mean the same committed data, so results can be cached by it
        (the runs table is).
        """
        try:
            st = os.stat(self.path)
            counter = read_head(self.path, 24, 4)
        except OSError:
            return ("gone", str(self.path))
        try:
            wal = os.stat(self._wal_path)
            wal_key: tuple[int, int] | None = (wal.st_size, wal.st_mtime_ns)
        except OSError:
            wal_key = None
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, counter, wal_key)

    @contextmanager
    def snapshot(self) -> Iterator[Database]:
        """Run the queries inside one read transaction, so they all see the same commits.

        The read lock is held until the block ends, which makes a writer's
        commit wait (rollback journal): keep the block to a handful of queries.
        Nested blocks join the outer one. Other threads wait for the block.
        """
        with self._lock:
            conn = self._connect()
            if conn.in_transaction:
                yield self
                return
            conn.execute("BEGIN")
            try:
                yield self
            finally:
                try:
                    conn.execute("COMMIT")  # only ends the read; nothing was written
                except sqlite3.Error:
                    pass

    def close(self) -> None:
        """Close the connection; the next query opens a new one."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "schema_version": self.schema_version}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = state["path"]
        self.schema_version = state["schema_version"]
        self._slot = _ConnectionSlot()
        self._immutable = False
        self._identity = None
        self._lock = threading.RLock()
        self._finalize()

    def _finalize(self) -> None:
        # Catalogs, Datasets and sources hold a Database for as long as a user
        # keeps them and are never closed by intake's or xarray's users: the
        # connection is closed when its Database is collected, never left to
        # sqlite3's own finaliser (which warns).
        weakref.finalize(self, self._slot.close)

    @property
    def _conn(self) -> sqlite3.Connection | None:
        return self._slot.conn

    @_conn.setter
    def _conn(self, conn: sqlite3.Connection | None) -> None:
        self._slot.conn = conn

    def __repr__(self) -> str:
        return f"Database({str(self.path)!r}, schema_version={self.schema_version})"

    # -- schema -----------------------------------------------------------
    def _check_schema(self) -> int:
        try:
            head = read_head(self.path, 0, 16)
        except OSError as exc:
            raise BeamtimeNotFoundError(f"cannot read beamtime database: {exc.strerror or exc}", self.path) from exc
        if head != b"SQLite format 3\x00":
            raise BeamtimeFormatError("not a SQLite database (bad file header)", self.path)
        (version,) = self.query("PRAGMA user_version")[0]
        if version > SCHEMA_VERSION:
            raise BeamtimeFormatError(
                f"schema version {version} is newer than the newest this reader knows "
                f"({SCHEMA_VERSION}); upgrade intake-resonance",
                self.path,
            )
        self._check_tables_are_tables(version)
        for table, columns in REQUIRED_COLUMNS.items():
            found = {row[1] for row in self.query("SELECT * FROM pragma_table_info(?)", (table,))}
            if not found:
                raise BeamtimeFormatError(
                    f"table {table!r} is missing; not a beamtime database (schema version {version})",
                    self.path,
                )
            missing = [c for c in columns if c not in found]
            if missing:
                raise BeamtimeFormatError(
                    f"table {table!r} lacks column(s) {', '.join(missing)}", self.path
                )
        # Version 0 means "never stamped": treated as 1 once the tables are there.
        return max(int(version), 1)

    def _check_tables_are_tables(self, version: int) -> None:
        """Refuse a view, virtual table or generated column under a beamtime table's name.

        Only the schema is read (never the objects), so this is instant: a
        view could run any query, however long, each time we read "a table".
        """
        names = list(REQUIRED_COLUMNS)
        rows = self.query(
            f"SELECT lower(name), type, sql FROM sqlite_master WHERE lower(name) IN ({', '.join('?' * len(names))})",
            names,
        )
        for name, kind, sql in rows:
            text = " ".join(str(sql or "").split()).upper()
            if kind != "table" or text.startswith("CREATE VIRTUAL"):
                what = "a virtual table" if kind == "table" else f"a {kind}"
                raise BeamtimeFormatError(
                    f"{name!r} is {what}, not a table; not a beamtime database (schema version {version})", self.path
                )
        for table in names:
            generated = [r[1] for r in self.query("SELECT * FROM pragma_table_xinfo(?)", (table,)) if r[6] in (2, 3)]
            if generated:
                raise BeamtimeFormatError(
                    f"table {table!r} has generated column(s) {', '.join(generated)}; not a beamtime database",
                    self.path,
                )


def open_zarr_array(store: str | Path | BeamtimeStore, zarr_group: str, **where: Any) -> Any:
    """Open one array of the Zarr store read-only (Zarr format 2 or 3), inside the store's boundary.

    Parameters
    ----------
    store : str, Path or BeamtimeStore
        The beamtime's ``.zarr`` directory, or a store already made for it.
    zarr_group : str
        Path of the array inside the store.
    **where
        ``run``, ``stream``, ``seq_num``, ``field`` for error messages.

    Returns
    -------
    zarr.Array

    Raises
    ------
    StoreEscapeError, FramesMissingError, FrameDecodeError
    """
    from .store import BeamtimeStore, open_array

    zstore = store if isinstance(store, BeamtimeStore) else BeamtimeStore(store)
    array_path(zstore.root, zarr_group, **where)  # containment check before any read
    return open_array(zstore, zarr_group, **where)
