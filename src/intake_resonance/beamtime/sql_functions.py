"""SQL functions our read-only connections offer to search criteria.

SQLite's ``LIKE`` and ``lower()`` fold ASCII letters only, and they see run
metadata as the beamline stored it: Python's ``json.dumps`` writes ``Größe``
as ``Gr\\u00f6\\u00dfe``. These functions, registered on every connection
:class:`~intake_resonance.beamtime.format.Database` opens, match text the way a user
reads it. They never raise (SQLite would turn that into an error for the
whole query) and their work is bounded by the size of the row they are given.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import orjson

__all__ = ["json_equal", "metadata_match", "register", "text_match"]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):  # a BLOB where text belongs: read what can be read
        return value.decode("utf-8", "replace")
    return str(value)


_UNREADABLE = object()


def _loads(raw: str) -> Any:
    """The value of a JSON text as the beamline's ``json.dumps`` writes it (``NaN`` too), or ``_UNREADABLE``."""
    try:
        return orjson.loads(raw)  # refuses nesting deeper than 1024
    except orjson.JSONDecodeError:
        pass
    if "NaN" not in raw and "Infinity" not in raw:
        return _UNREADABLE
    try:
        return json.loads(raw)  # Python's own reader takes NaN and Infinity
    except (ValueError, RecursionError):
        return _UNREADABLE


def _decoded_texts(raw: str) -> list[str] | None:
    """Every key and scalar value of a JSON text, escapes decoded; None if it does not decode."""
    doc = _loads(raw)
    if doc is _UNREADABLE:
        return None
    out: list[str] = []
    stack = [doc]
    while stack:  # iterative: no recursion depth to exhaust
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            out.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif item is not None and not isinstance(item, bool):
            out.append(str(item))
    return out


def text_match(needle: Any, uid: Any, plan_name: Any, sample: Any, operator: Any, metadata: Any) -> int:
    """1 if ``needle`` (already casefolded) is a substring of a run's uid, plan, sample, operator or metadata.

    Every value is compared casefolded, so non-ASCII letters match in either
    case. Metadata matches on each of its keys and values with JSON escapes
    decoded (``\\u00fc`` is ``ü``; the quotes and escapes themselves are not
    text); metadata that is not JSON matches on its text as stored.
    """
    try:
        if not isinstance(needle, str):
            return 0
        for value in (uid, plan_name, sample, operator):
            text = _text(value)
            if text is not None and needle in text.casefold():
                return 1
        raw = _text(metadata)
        if raw is None:
            return 0
        if "\\" not in raw and needle not in raw.casefold():
            return 0  # nothing escaped: every key and value is in the stored text as it reads
        texts = _decoded_texts(raw)
        if texts is None:
            return int(needle in raw.casefold())
        return int(any(needle in t.casefold() for t in texts))
    except Exception:  # noqa: BLE001  # a hostile row matches nothing; it never fails the search
        return 0


def json_equal(stored: Any, wanted: Any) -> int:
    """1 if two JSON texts hold equal values (key order and escapes aside; 1, 1.0 and true differ)."""
    try:
        if not isinstance(stored, str) or not isinstance(wanted, str):
            return 0
        a, b = _loads(stored), _loads(wanted)
        if a is _UNREADABLE or b is _UNREADABLE:
            return 0
        canon = orjson.OPT_SORT_KEYS
        return int(orjson.dumps(a, option=canon) == orjson.dumps(b, option=canon))
    except Exception:  # noqa: BLE001
        return 0


def metadata_match(metadata: Any, key: Any, wanted: Any) -> int:
    """1 if run metadata SQLite's JSON functions refuse (``NaN``) holds ``key`` equal to the JSON text ``wanted``.

    ``wanted`` ``'null'`` matches a null or missing key, and NULL metadata.
    Metadata that does not decode matches nothing.
    """
    try:
        value = _loads(wanted) if isinstance(wanted, str) else _UNREADABLE
        if value is _UNREADABLE or not isinstance(key, str):
            return 0
        if metadata is None:
            return int(value is None)
        raw = _text(metadata)
        doc = _UNREADABLE if raw is None else _loads(raw)
        if not isinstance(doc, dict):
            return 0
        found = doc.get(key)
        if value is None or found is None:
            return int(value is None and found is None)
        if isinstance(value, bool) or isinstance(found, bool):
            return int(value is found)
        if isinstance(value, (int, float)):
            return int(isinstance(found, (int, float)) and found == value)
        if isinstance(value, str):
            return int(found == value)
        canon = orjson.OPT_SORT_KEYS
        return int(orjson.dumps(found, option=canon) == orjson.dumps(value, option=canon))
    except Exception:  # noqa: BLE001
        return 0


def register(conn: sqlite3.Connection) -> None:
    """Make the ``resonance_*`` functions of this module available on ``conn``."""
    conn.create_function("resonance_text_match", 6, text_match, deterministic=True)
    conn.create_function("resonance_json_equal", 2, json_equal, deterministic=True)
    conn.create_function("resonance_metadata_match", 3, metadata_match, deterministic=True)
