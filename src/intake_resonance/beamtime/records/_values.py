"""Values shared by the record readers: JSON decoding and the MISSING marker."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from ..errors import BadJSONError
from ..format import Database

__all__ = ["MISSING", "MAX_JSON_DEPTH", "MAX_PARAMS", "decode_json", "json_groups"]

#: Runs (or streams) named in one SQL query: one JSON parameter each, so SQLite's
#: limit on ``?`` never applies, and the text handed over stays small.
MAX_PARAMS = 500


def json_groups(values: Iterable[str]) -> Iterator[str]:
    """The distinct ``values`` (first seen first) as JSON lists of at most :data:`MAX_PARAMS`, one ``json_each(?)`` each."""
    unique = list(dict.fromkeys(values))
    for k in range(0, len(unique), MAX_PARAMS):
        yield json.dumps(unique[k : k + MAX_PARAMS])

#: Deepest nesting of JSON containers we decode (the event or metadata object
#: itself is level 1). The beamline writes two or three levels; a deeper file
#: is hostile or broken, and Python's decoder or encoder would overflow on it.
MAX_JSON_DEPTH = 100


class _Missing:
    """Marks a field absent from an event (distinct from a JSON ``null``)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        return "MISSING"


MISSING = _Missing()


def _loads(text: str | bytes) -> Any:
    # The beamline writes with ``json.dumps``, which spells NaN and infinite
    # readings ``NaN``/``Infinity``: Python's decoder takes them, orjson does not.
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        try:
            value = json.loads(text)  # a json.JSONDecodeError (ValueError) if truly broken
        except RecursionError:
            raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
        # Python's decoder takes a lone surrogate escape ("\ud800"), which is no text: nothing
        # downstream (UTF-8, Arrow, netCDF, HTTP) can carry it. orjson refuses it; so do we.
        if _holds_surrogate(value):
            raise ValueError("a string holds a lone surrogate escape (such as \\ud800), which is not text") from None
        return value


def _holds_surrogate(value: Any) -> bool:
    """Whether any string in ``value`` (keys included) holds a lone UTF-16 surrogate; without recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _depth(value: Any) -> int:
    """Nesting depth of JSON containers in ``value`` (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, level)
        if level > MAX_JSON_DEPTH:
            break  # deep enough to refuse: no need to walk the rest
        stack.extend((v, level + 1) for v in item if isinstance(v, (dict, list)))
    return deepest


def _too_deep(value: Any, base: int = 0) -> bool:
    """Whether ``value``, sitting ``base`` levels down, nests deeper than :data:`MAX_JSON_DEPTH`."""
    return isinstance(value, (dict, list)) and base + _depth(value) > MAX_JSON_DEPTH


def decode_json(text: str | bytes | None, default: Any, db: Database, what: str, **where: Any) -> Any:
    """Decode one JSON column value; NULL or empty gives ``default``.

    Raises
    ------
    BadJSONError
        Naming the file, ``what`` column and ``where`` it sits.
    """
    if text is None or text == "" or text == b"":
        return default
    try:
        value = _loads(text)
    except ValueError as exc:
        raise BadJSONError(f"{what} is not valid JSON ({exc})", db.path, **where) from exc
    if _too_deep(value):
        raise BadJSONError(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels", db.path, **where)
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
