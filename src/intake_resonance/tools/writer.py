"""Write beamtimes the way the beamline's control software does (demos, tests).

The writer produces the layout described in the format notes: schema 2 by
default (1 or an unstamped 0 on request), a Zarr 3 store (or 2) beside the
database with one array per run and image field at ``runs/<uid>/<field>``,
chunked one frame each and grown by one frame per image, and the beamline's
commit timing: the run row at start, a stream row (with the events so far)
when a stream opens, events and image references at close.

This module is the only one in the package that opens a beamtime for writing.
"""

from __future__ import annotations

import random
import sqlite3
import time as _time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..beamtime.format import SCHEMA_VERSION, zarr_path_for

__all__ = ["BeamtimeWriter", "DDL"]

DDL = """
CREATE TABLE IF NOT EXISTS samples (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL,
    formula      TEXT,
    serial       TEXT,
    tags         TEXT,
    beamline_pos TEXT,
    extra        TEXT
);
CREATE INDEX IF NOT EXISTS idx_samples_name ON samples(name);
CREATE TABLE IF NOT EXISTS runs (
    uid          TEXT PRIMARY KEY,
    sample_id    INTEGER REFERENCES samples(id) ON DELETE SET NULL,
    plan_name    TEXT NOT NULL,
    time_start   REAL NOT NULL,
    time_stop    REAL,
    exit_status  TEXT,
    num_events   INTEGER DEFAULT 0,
    operator     TEXT,
    metadata     TEXT
);
CREATE INDEX IF NOT EXISTS idx_runs_sample ON runs(sample_id);
CREATE INDEX IF NOT EXISTS idx_runs_plan   ON runs(plan_name);
CREATE INDEX IF NOT EXISTS idx_runs_tstart ON runs(time_start);
CREATE TABLE IF NOT EXISTS streams (
    uid          TEXT PRIMARY KEY,
    run_uid      TEXT NOT NULL REFERENCES runs(uid) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    data_keys    TEXT NOT NULL,
    time_created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_streams_run ON streams(run_uid);
CREATE UNIQUE INDEX IF NOT EXISTS idx_streams_run_name ON streams(run_uid, name);
CREATE TABLE IF NOT EXISTS events (
    uid        TEXT PRIMARY KEY,
    stream_uid TEXT NOT NULL REFERENCES streams(uid) ON DELETE CASCADE,
    seq_num    INTEGER NOT NULL,
    time       REAL NOT NULL,
    data       TEXT NOT NULL,
    timestamps TEXT
);
CREATE INDEX IF NOT EXISTS idx_events_stream ON events(stream_uid);
CREATE UNIQUE INDEX IF NOT EXISTS idx_events_seq ON events(stream_uid, seq_num);
CREATE TABLE IF NOT EXISTS image_refs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    event_uid      TEXT NOT NULL REFERENCES events(uid) ON DELETE CASCADE,
    field_name     TEXT NOT NULL,
    zarr_group     TEXT NOT NULL,
    index_in_stack INTEGER NOT NULL,
    shape_x        INTEGER NOT NULL,
    shape_y        INTEGER NOT NULL,
    dtype          TEXT NOT NULL{codec}
);
CREATE INDEX IF NOT EXISTS idx_image_refs_event ON image_refs(event_uid);
"""


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


class BeamtimeWriter:
    """Write one beamtime (``NAME.db`` + ``NAME.zarr``) as the beamline does.

    Parameters
    ----------
    path : str or Path
        The ``.db`` file; created with its tables if it does not exist.
    schema_version : {2, 1, 0}
        2 adds ``image_refs.compression_codec``; 0 leaves ``user_version``
        unstamped (early, hand-made files).
    zarr_format : {3, 2}
        Format of the arrays written into the ``.zarr`` store.
    seed : int, optional
        Makes generated uids deterministic (demos, tests).
    journal_mode : str, optional
        e.g. ``"wal"``; the default leaves SQLite's rollback journal.

    Examples
    --------
    >>> with BeamtimeWriter("bt.db") as w:                       # doctest: +SKIP
    ...     uid = w.open_run("scan", sample="PS", time=1.7e9)
    ...     w.open_stream("primary", {"i0": {"dtype": "number"}})
    ...     w.write_event({"i0": 1.0}, time=1.7e9 + 1)
    ...     w.close_run("success", time=1.7e9 + 2)
    """

    def __init__(
        self,
        path: str | Path,
        *,
        schema_version: int = SCHEMA_VERSION,
        zarr_format: int = 3,
        seed: int | None = None,
        journal_mode: str | None = None,
    ) -> None:
        if schema_version not in (0, 1, 2):
            raise ValueError(f"schema_version must be 0, 1 or 2, not {schema_version}")
        self.path = Path(path)
        self.zarr_path = zarr_path_for(self.path)
        self.schema_version = schema_version
        self.zarr_format = zarr_format
        self._rng = random.Random(seed) if seed is not None else None
        self._journal_mode = journal_mode
        self._conn: sqlite3.Connection | None = None
        self._group: Any = None
        self._run: str | None = None
        self._stream: str | None = None
        self._seq = 0

    # -- lifecycle --------------------------------------------------------
    def open(self) -> BeamtimeWriter:
        """Open (creating if needed) the database and the Zarr store."""
        import zarr

        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30.0)
        conn.execute("PRAGMA foreign_keys = ON")
        if self._journal_mode:
            conn.execute(f"PRAGMA journal_mode = {self._journal_mode}")
        codec = ",\n    compression_codec TEXT" if self.schema_version >= 2 else ""
        conn.executescript(DDL.format(codec=codec))
        if self.schema_version:
            conn.execute(f"PRAGMA user_version = {int(self.schema_version)}")
        conn.commit()
        self._conn = conn
        # A LocalStore, not a string: zarr reads a string as a URL, where "#" starts a fragment.
        self._group = zarr.open_group(zarr.storage.LocalStore(self.zarr_path), mode="a", zarr_format=self.zarr_format)  # type: ignore[arg-type]
        return self

    def close(self) -> None:
        """Commit what is pending and close; an open run stays open (as after a crash)."""
        if self._conn is not None:
            self._conn.commit()
            self._conn.close()
            self._conn = None
            self._group = None
        self._run, self._stream = None, None  # a run left open stays open in the file

    def __enter__(self) -> BeamtimeWriter:
        return self.open()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._run is not None:
            self.close_run("failed" if exc_type is not None else "success")
        self.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The writer's own connection (tests use it to break files on purpose)."""
        if self._conn is None:
            raise RuntimeError("BeamtimeWriter is not open")
        return self._conn

    def new_uid(self) -> str:
        """A 32-character lowercase hex uuid4 (seeded when ``seed`` was given)."""
        if self._rng is None:
            return uuid.uuid4().hex
        return uuid.UUID(int=self._rng.getrandbits(128), version=4).hex

    # -- rows ---------------------------------------------------------------
    def add_sample(
        self,
        name: str,
        *,
        formula: str | None = None,
        serial: str | None = None,
        tags: list[str] | None = None,
        beamline_pos: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> int:
        """Return the id of the first sample named ``name``, inserting it if new."""
        conn = self.connection
        row = conn.execute("SELECT id FROM samples WHERE name = ? ORDER BY id LIMIT 1", (name,)).fetchone()
        if row is not None:
            return int(row[0])
        cur = conn.execute(
            "INSERT INTO samples (name, formula, serial, tags, beamline_pos, extra) VALUES (?, ?, ?, ?, ?, ?)",
            (name, formula, serial, _json(tags or []), beamline_pos, _json(extra or {})),
        )
        conn.commit()
        assert cur.lastrowid is not None
        return cur.lastrowid

    def open_run(
        self,
        plan_name: str,
        *,
        sample: int | str | None = None,
        time: float | None = None,
        operator: str | None = None,
        metadata: dict[str, Any] | None = None,
        uid: str | None = None,
    ) -> str:
        """Insert and commit a run row (no stop time, status or event count yet).

        ``sample`` is a sample id or a name (looked up or inserted).
        """
        if self._run is not None:
            raise RuntimeError(f"run {self._run} is still open")
        conn = self.connection
        sample_id = self.add_sample(sample) if isinstance(sample, str) else sample
        uid = uid or self.new_uid()
        conn.execute(
            "INSERT INTO runs (uid, sample_id, plan_name, time_start, operator, metadata) VALUES (?, ?, ?, ?, ?, ?)",
            (uid, sample_id, plan_name, _time.time() if time is None else time, operator, _json(metadata or {})),
        )
        conn.commit()
        self._run, self._stream, self._seq = uid, None, 0
        return uid

    def open_stream(self, name: str, data_keys: dict[str, Any], *, time: float | None = None) -> str:
        """Insert a stream row; the commit also commits the run's events so far."""
        if self._run is None:
            raise RuntimeError("no open run")
        uid = self.new_uid()
        self.connection.execute(
            "INSERT INTO streams (uid, run_uid, name, data_keys, time_created) VALUES (?, ?, ?, ?, ?)",
            (uid, self._run, name, _json(data_keys), _time.time() if time is None else time),
        )
        self.connection.commit()
        self._stream = uid
        return uid

    def write_event(
        self,
        data: dict[str, Any],
        *,
        time: float | None = None,
        timestamps: dict[str, float] | None = None,
        raw_data: str | None = None,
    ) -> str:
        """Insert an event (not committed yet); ``seq_num`` counts per run across streams.

        ``raw_data`` stores that text instead of encoding ``data`` (tests of
        broken files use it).
        """
        if self._stream is None:
            raise RuntimeError("no open stream")
        self._seq += 1
        uid = self.new_uid()
        self.connection.execute(
            "INSERT INTO events (uid, stream_uid, seq_num, time, data, timestamps) VALUES (?, ?, ?, ?, ?, ?)",
            (
                uid,
                self._stream,
                self._seq,
                _time.time() if time is None else time,
                _json(data) if raw_data is None else raw_data,
                _json(timestamps or {}),
            ),
        )
        return uid

    def write_events(
        self,
        data: Sequence[dict[str, Any]],
        *,
        time: Sequence[float],
        timestamps: Sequence[dict[str, float] | None] | None = None,
    ) -> list[str]:
        """Insert many events at once (not committed yet), row for row as :meth:`write_event`.

        Same uids, ``seq_num`` rule and JSON layout as calling
        :meth:`write_event` once per event, in one ``executemany`` (large
        benchmark beamtimes would otherwise spend most time in Python).

        Parameters
        ----------
        data : sequence of dict
            Each event's readings.
        time : sequence of float
            Each event's epoch seconds (same length as ``data``).
        timestamps : sequence of dict or None, optional
            Each event's per-field timestamps (``{}`` when None or omitted).

        Returns
        -------
        list of str
            The new events' uids, in order.
        """
        if self._stream is None:
            raise RuntimeError("no open stream")
        if len(time) != len(data) or (timestamps is not None and len(timestamps) != len(data)):
            raise ValueError("data, time and timestamps must have the same length")
        stamps = timestamps if timestamps is not None else [None] * len(data)
        uids = [self.new_uid() for _ in data]
        first = self._seq + 1
        rows = [
            (uid, self._stream, first + i, float(t), _json(d), _json(ts or {}))
            for i, (uid, d, t, ts) in enumerate(zip(uids, data, time, stamps))
        ]
        self.connection.executemany(
            "INSERT INTO events (uid, stream_uid, seq_num, time, data, timestamps) VALUES (?, ?, ?, ?, ?, ?)", rows
        )
        self._seq += len(rows)
        return uids

    def write_image(self, event_uid: str, field_name: str, image: np.ndarray, *, index: int | None = None) -> int:
        """Store a 2-D frame in Zarr at once and reference it (reference not committed yet).

        By default the frame is appended (the array grows by one frame);
        ``index`` puts it at that position instead, growing the array as
        needed, so tests can store frames out of event order.

        Returns
        -------
        int
            The frame's ``index_in_stack``.
        """
        if self._run is None:
            raise RuntimeError("no open run")
        image = np.asarray(image)
        if image.ndim != 2:
            raise ValueError(f"a frame must be 2-D, got shape {image.shape}")
        group = f"runs/{self._run}/{field_name}"
        if group in self._group:
            arr = self._group[group]
        else:
            arr = self._group.create_array(group, shape=(0, *image.shape), chunks=(1, *image.shape), dtype=image.dtype)
        # Every frame gets its chunk file, even one of the fill value only: readers treat an
        # absent chunk of a referenced frame as damage, not as a frame of zeros.
        arr = arr.with_config({"write_empty_chunks": True})
        n = arr.shape[0]
        pos = n if index is None else int(index)
        if pos >= n:
            arr.resize((pos + 1, *image.shape))
        arr[pos] = image
        self._insert_ref(event_uid, field_name, group, pos, image.shape, str(image.dtype))
        return pos

    def _insert_ref(self, event_uid: str, field_name: str, group: str, pos: int, shape: tuple[int, ...], dtype: str) -> None:
        cols = "event_uid, field_name, zarr_group, index_in_stack, shape_x, shape_y, dtype"
        vals: list[Any] = [event_uid, field_name, group, pos, int(shape[0]), int(shape[1]), dtype]
        if self.schema_version >= 2:
            cols += ", compression_codec"
            vals.append("blosc")  # what the beamline records, whatever codec Zarr used
        self.connection.execute(f"INSERT INTO image_refs ({cols}) VALUES ({', '.join('?' * len(vals))})", vals)

    def close_run(self, exit_status: str = "success", *, time: float | None = None) -> None:
        """Stamp stop time, status and event count, and commit everything."""
        if self._run is None:
            raise RuntimeError("no open run")
        self.connection.execute(
            "UPDATE runs SET time_stop = ?, exit_status = ?, num_events = ? WHERE uid = ?",
            (_time.time() if time is None else time, exit_status, self._seq, self._run),
        )
        self.connection.commit()
        self._run, self._stream = None, None
