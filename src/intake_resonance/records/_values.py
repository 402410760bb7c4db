"""Values shared by the record readers: JSON decoding and the MISSING marker."""

from __future__ import annotations

import json
from typing import Any

import orjson

from ..errors import BadJSONError
from ..format import Database

__all__ = ["MISSING", "decode_json"]


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
        return json.loads(text)  # a json.JSONDecodeError (ValueError) if truly broken


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
        return _loads(text)
    except ValueError as exc:
        raise BadJSONError(f"{what} is not valid JSON ({exc})", db.path, **where) from exc


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
