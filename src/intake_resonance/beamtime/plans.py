"""Fixed query plans: a file's own statistics cannot make our queries slow.

SQLite's planner reads ``sqlite_stat1`` (and ``sqlite_stat4``, where built
in) from the file itself, and a read-only connection cannot ignore them. A
crafted or stale table ("events has 1 row", "this index matches every row")
turns each lookup of a run's streams, events or frames into a scan of the
whole table, and listings into nested scans. The beamline's writer never
runs ``ANALYZE``, so field files carry no statistics; when a file does, the
lookups of the per-run reads name their index (``INDEXED BY``) so the plan
is the one the schema was made for, whatever the statistics say.

An index is named only if the file has one on the expected leading columns
that is not partial (a hand-made file without it keeps SQLite's plan, and
``INDEXED BY`` never fails for want of an index). Without statistics tables
nothing changes: SQLite's plans are already those.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from .format import Database

__all__ = ["INDEXED", "has_statistics", "indexed_by"]

#: (table, leading columns) of the lookups whose plans are fixed.
INDEXED: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("runs", ("uid",)),
    ("streams", ("run_uid", "name")),
    ("streams", ("run_uid",)),
    ("events", ("stream_uid", "seq_num")),
    ("events", ("stream_uid",)),
    ("events", ("uid",)),
    ("image_refs", ("event_uid",)),
)

_lock = threading.Lock()
_known: weakref.WeakKeyDictionary[Database, tuple[Any, dict[tuple[str, tuple[str, ...]], str]]] = (
    weakref.WeakKeyDictionary()
)


def _index_for(db: Database, table: str, columns: tuple[str, ...]) -> str | None:
    best: tuple[int, str] | None = None
    for row in db.query("SELECT name, partial FROM pragma_index_list(?)", (table,)):
        name, partial = row
        if partial or not isinstance(name, str):
            continue
        cols = tuple(r[0] for r in db.query("SELECT name FROM pragma_index_info(?) ORDER BY seqno", (name,)))
        if cols[: len(columns)] == columns and (best is None or len(cols) < best[0]):
            best = (len(cols), name)
    return None if best is None else best[1]


def _hints(db: Database) -> dict[tuple[str, tuple[str, ...]], str]:
    key = (db.identity, db.path)
    with _lock:
        known = _known.get(db)
    if known is not None and known[0] == key and key[0] is not None:
        return known[1]
    hints: dict[tuple[str, tuple[str, ...]], str] = {}
    if has_statistics(db):
        for table, columns in INDEXED:
            name = _index_for(db, table, columns)
            if name is not None:
                hints[(table, columns)] = name
    with _lock:
        _known[db] = ((db.identity, db.path), hints)
    return hints


def has_statistics(db: Database) -> bool:
    """Whether the file holds planner statistics (``sqlite_stat1`` .. ``sqlite_stat4``)."""
    rows = db.query("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name LIKE 'sqlite\\_stat_' ESCAPE '\\'")
    return bool(rows[0][0])


def indexed_by(db: Database, table: str, *columns: str) -> str:
    """`` INDEXED BY <index>`` for a lookup of ``table`` on ``columns`` when the file has statistics, else ``""``.

    Parameters
    ----------
    db : Database
    table : str
        One of the tables in :data:`INDEXED`.
    *columns : str
        The lookup's leading columns, as listed there.
    """
    name = _hints(db).get((table, tuple(columns)))
    return "" if name is None else ' INDEXED BY "' + name.replace('"', '""') + '"'
