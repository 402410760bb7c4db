"""Samples and runs: rows to plain records, listings, uid lookup."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..cache import ByteBoundedCache, size_of_strings
from ..errors import BadJSONError, BeamtimeDataError, RunNotFoundError, SearchCriterionError
from ..format import Database
from ..plans import indexed_by
from ._values import _is_number, decode_json, json_groups
from .query import NAMES, RunQuery, _encodes

__all__ = [
    "SampleRecord",
    "RunRecord",
    "get_sample",
    "get_run",
    "get_runs",
    "list_runs",
    "list_uids",
    "metadata_keys",
    "where_clause",
    "recent_runs",
    "runs_by_sample",
    "runs_table",
    "match_uids",
    "resolve_uid",
]


# ---------------------------------------------------------------------- samples
@dataclass(frozen=True)
class SampleRecord:
    """One row of ``samples``, JSON columns decoded."""

    id: int
    name: str
    formula: str | None
    serial: str | None
    tags: list[str]
    beamline_pos: str | None
    extra: dict[str, Any]


_SAMPLE_SQL = "SELECT id, name, formula, serial, tags, beamline_pos, extra FROM samples WHERE id = ?"


def get_sample(db: Database, sample_id: int | None) -> SampleRecord | None:
    """Return the sample with this id, or None when there is none (or it was deleted)."""
    if sample_id is None:
        return None
    rows = db.query(_SAMPLE_SQL, (sample_id,))
    if not rows:
        return None
    sid, name, formula, serial, tags, pos, extra = rows[0]
    where: dict[str, Any] = {"field": f"samples.id={sid}"}
    tag_list = decode_json(tags, [], db, "sample tags", **where)
    extra_dict = decode_json(extra, {}, db, "sample extra", **where)
    # Other JSON types would be split or rejected by list()/dict(): name the row instead.
    if tag_list is not None and not isinstance(tag_list, list):
        raise BadJSONError(
            f"sample tags must be a JSON list, found {type(tag_list).__name__}", db.path, **where
        )
    if extra_dict is not None and not isinstance(extra_dict, dict):
        raise BadJSONError(
            f"sample extra must be a JSON object, found {type(extra_dict).__name__}", db.path, **where
        )
    return SampleRecord(
        id=sid,
        name=name,
        formula=formula,
        serial=serial,
        tags=list(tag_list or []),
        beamline_pos=pos,
        extra=dict(extra_dict or {}),
    )


# ------------------------------------------------------------------------- runs
@dataclass(frozen=True)
class RunRecord:
    """One row of ``runs`` with its sample's name; metadata stays JSON text
    until :meth:`metadata` is called, so listing many runs stays cheap."""

    uid: str
    plan_name: str
    time_start: float
    time_stop: float | None
    exit_status: str | None
    num_events: int
    operator: str | None
    metadata_json: str | None
    sample_id: int | None
    sample_name: str | None

    def metadata(self, db: Database) -> dict[str, Any]:
        """The decoded run metadata (an empty dict when NULL)."""
        value = decode_json(self.metadata_json, {}, db, "run metadata", run=self.uid)
        return value if isinstance(value, dict) else {"metadata": value}


_RUN_SELECT = (
    "SELECT r.uid, r.plan_name, r.time_start, r.time_stop, r.exit_status, "
    "COALESCE(r.num_events, 0), r.operator, r.metadata, r.sample_id, s.name "
    "FROM runs r LEFT JOIN samples s ON s.id = r.sample_id"
)


def _check_run_values(
    db: Database, uid: str, time_start: Any, time_stop: Any, num_events: Any, texts: tuple[tuple[str, Any], ...] = ()
) -> None:
    """Refuse run rows whose numeric or text columns (``texts``: name, value) hold something else (hand-edited files)."""
    if not isinstance(uid, str):
        raise BeamtimeDataError(f"runs.uid must be text, found {uid!r}", db.path)
    for column, value in texts:
        if not (value is None or isinstance(value, str)):
            raise BeamtimeDataError(f"{column} must be text, found {value!r}", db.path, run=uid)
    for column, value, nullable in (
        ("time_start", time_start, False),
        ("time_stop", time_stop, True),
        ("num_events", num_events, False),
    ):
        if not (_is_number(value) or (nullable and value is None)):
            raise BeamtimeDataError(f"runs.{column} must be a number, found {value!r}", db.path, run=uid)


def _run_records(db: Database, rows: list[tuple[Any, ...]]) -> list[RunRecord]:
    out = []
    for row in rows:
        texts = (("runs.plan_name", row[1]), ("runs.exit_status", row[4]), ("runs.operator", row[6]), ("samples.name", row[9]))
        _check_run_values(db, row[0], row[2], row[3], row[5], texts)
        out.append(RunRecord(*row))
    return out


_known_keys: ByteBoundedCache[tuple[Any, ...], frozenset[str]] = ByteBoundedCache(16 * 2**20, size_of_strings)


def metadata_keys(db: Database) -> frozenset[str]:
    """Top-level keys of any run's metadata, cached per beamtime state."""
    state = (str(db.path), db.state())
    hit = _known_keys.get(state)
    if hit is not None:
        return hit
    rows = db.query(
        "SELECT DISTINCT j.key FROM runs r, json_each(r.metadata) j "
        "WHERE typeof(r.metadata) = 'text' AND json_valid(r.metadata)"
    )
    keys = {str(r[0]) for r in rows}
    # Metadata SQLite does not read as JSON (json.dumps writes NaN) is searched in Python: its keys count too.
    for (text,) in db.query("SELECT r.metadata FROM runs r WHERE typeof(r.metadata) = 'text' AND NOT json_valid(r.metadata)"):
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            keys.update(str(k) for k in value)
    found = frozenset(keys)
    _known_keys.put(state, found)
    return found


def where_clause(db: Database, query: RunQuery | None) -> tuple[str, list[Any]]:
    """``query``'s WHERE clause and parameters, after checking its bare names against the beamtime.

    Raises
    ------
    SearchCriterionError
        A criterion named neither as a run property nor as a key of any
        run's metadata (a misspelling, most likely): the message names the
        accepted names; ``metadata={name: value}`` asks for such a key anyway.
    """
    query = query or RunQuery()
    if query.bare:
        unknown = [name for name in query.bare if name not in metadata_keys(db)]
        if unknown:
            keys = sorted(metadata_keys(db))
            # Keys come from the file: at most 20 shown, each cut to 40 characters, so the message stays a line.
            cut = [k if len(k) <= 40 else k[:37] + "..." for k in keys[:20]]
            shown = ", ".join(cut) + (f" and {len(keys) - 20} more" if len(keys) > 20 else "")
            raise SearchCriterionError(
                f"no run has a property or metadata key {unknown[0][:80]!r} to search by; search takes "
                f"{', '.join(NAMES)}, or a key of the runs' metadata ({shown or 'none here'}); "
                f"metadata={{{unknown[0][:80]!r}: ...}} searches for a key no run has yet",
                db.path,
            )
    return query.where()


def list_runs(db: Database, query: RunQuery | None = None) -> list[RunRecord]:
    """All runs matching ``query``, oldest first (ties broken by uid)."""
    where, params = where_clause(db, query)
    rows = db.query(_RUN_SELECT + where + " ORDER BY r.time_start, r.uid", params)
    return _run_records(db, rows)


# Ties in time_start: the row inserted last counts as newest.
_NEWEST_FIRST = " ORDER BY r.time_start DESC, r.rowid DESC"


def recent_runs(db: Database, n: int) -> list[RunRecord]:
    """The ``n`` runs that started last, newest first.

    A negative ``n`` means no limit, as SQLite reads ``LIMIT``.
    """
    rows = db.query(_RUN_SELECT + _NEWEST_FIRST + " LIMIT ?", (n,))
    return _run_records(db, rows)


def runs_by_sample(db: Database, name: str) -> list[RunRecord]:
    """Runs whose sample is named exactly ``name``, newest first."""
    rows = db.query(_RUN_SELECT + " WHERE s.name = ?" + _NEWEST_FIRST, (name,))
    return _run_records(db, rows)


def list_uids(db: Database, query: RunQuery | None = None) -> list[str]:
    """Uids of the runs matching ``query``, oldest first; one light query."""
    where, params = where_clause(db, query)
    rows = db.query(
        "SELECT r.uid FROM runs r LEFT JOIN samples s ON s.id = r.sample_id" + where + " ORDER BY r.time_start, r.uid",
        params,
    )
    return [r[0] for r in rows]


def runs_table(db: Database, query: RunQuery | None = None) -> dict[str, list[Any]]:
    """Columns of the runs matching ``query`` (oldest first), from a single query.

    Keys: uid, plan_name, sample, time_start, time_stop, exit_status,
    num_events, operator (times in epoch seconds, NULL as None).
    """
    where, params = where_clause(db, query)
    rows = db.query(
        "SELECT r.uid, r.plan_name, s.name, r.time_start, r.time_stop, r.exit_status, "
        "COALESCE(r.num_events, 0), r.operator FROM runs r LEFT JOIN samples s ON s.id = r.sample_id"
        + where
        + " ORDER BY r.time_start, r.uid",
        params,
    )
    names = ("uid", "plan_name", "sample", "time_start", "time_stop", "exit_status", "num_events", "operator")
    columns = list(zip(*rows)) if rows else [()] * len(names)
    # One C-level pass over each column's types; only a column holding something
    # else is walked row by row, to name the run whose row is wrong.
    if any(not set(map(type, col)) <= _TABLE_TYPES[name] for name, col in zip(names, columns)):
        for row in rows:
            texts = (("runs.plan_name", row[1]), ("samples.name", row[2]), ("runs.exit_status", row[5]), ("runs.operator", row[7]))
            _check_run_values(db, row[0], row[3], row[4], row[6], texts)
    return {name: list(col) for name, col in zip(names, columns)}


_TEXT: set[type] = {str, type(None)}
_NUMBER: set[type] = {int, float}
#: The Python types each runs_table column may hold (SQLite gives no bool).
_TABLE_TYPES: dict[str, set[type]] = {
    "uid": {str},
    "plan_name": _TEXT,
    "sample": _TEXT,
    "time_start": _NUMBER,
    "time_stop": _NUMBER | {type(None)},
    "exit_status": _TEXT,
    "num_events": _NUMBER,
    "operator": _TEXT,
}


def _run_select(db: Database) -> str:
    """:data:`_RUN_SELECT` looking runs up by uid through its index when the file holds statistics."""
    return _RUN_SELECT.replace("FROM runs r", "FROM runs r" + indexed_by(db, "runs", "uid"), 1)


def get_run(db: Database, uid: str) -> RunRecord | None:
    """The run with exactly this uid, or None."""
    rows = db.query(_run_select(db) + " WHERE r.uid = ?", (uid,))
    return _run_records(db, rows)[0] if rows else None


def get_runs(db: Database, uids: list[str] | tuple[str, ...]) -> dict[str, RunRecord]:
    """The runs with exactly these uids (those that exist), in a few queries of at most 500 uids each."""
    out: dict[str, RunRecord] = {}
    sql = _run_select(db) + " WHERE r.uid IN (SELECT value FROM json_each(?))"
    for group in json_groups(uids):
        rows = db.query(sql, (group,))
        out.update((r.uid, r) for r in _run_records(db, rows))
    return out


#: Longer keys are not uids (the format's are 32 characters); refused before any query.
MAX_KEY = 256


def resolve_uid(db: Database, key: str, query: RunQuery | None = None, *, min_prefix: int = 6) -> str:
    """Turn a full uid or a unique uid prefix (``min_prefix`` characters or more) into a uid.

    The exact uid always wins; then a unique prefix, compared case by case
    (SQLite's ``LIKE`` would fold ASCII letters and pick another run). Only a
    key in upper-case hex, which no beamline uid is (they are lowercase hex),
    is then tried in lower case.

    Raises
    ------
    RunNotFoundError
        No run matches, the key is too short or too long, or it is ambiguous
        (the message lists the matches).
    """
    key = str(key).strip()
    if len(key) > MAX_KEY:
        raise RunNotFoundError(f"a key of {len(key)} characters is no uid (they have 32)", db.path, run=key[:40] + "...")
    if len(key) < min_prefix:
        raise RunNotFoundError(
            f"{key!r} is too short to identify a run: give the uid or at least {min_prefix} of its characters",
            db.path,
            run=key,
        )
    matches = match_uids(db, key, query)
    if not matches and key != key.lower() and all(c in "0123456789abcdefABCDEF-" for c in key):
        matches = match_uids(db, key.lower(), query)
    if key in matches:
        return key
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RunNotFoundError("no run has this uid or uid prefix", db.path, run=key)
    raise RunNotFoundError(f"uid prefix is ambiguous; it matches {', '.join(matches)}", db.path, run=key)


def match_uids(db: Database, prefix: str, query: RunQuery | None = None) -> list[str]:
    """Uids starting with ``prefix`` exactly, letter case included (among runs matching ``query``), sorted.

    The exact uid is always among them when it exists (a longer uid sharing
    the prefix cannot push it past the 50 returned).
    """
    if "\0" in prefix or not _encodes(prefix):
        return []  # no uid holds a NUL or a lone surrogate
    where, params = where_clause(db, query)
    # A range on the uid index, then an exact comparison of the first characters (BINARY: case kept).
    clause = (" AND " if where else " WHERE ") + "r.uid >= ? AND r.uid < ? AND substr(r.uid, 1, ?) = ?"
    rows = db.query(
        "SELECT r.uid FROM runs r LEFT JOIN samples s ON s.id = r.sample_id"
        + where
        + clause
        + " ORDER BY r.uid = ? DESC, r.uid LIMIT 50",
        [*params, prefix, prefix + "\U0010ffff", len(prefix), prefix, prefix],
    )
    return sorted(r[0] for r in rows)
