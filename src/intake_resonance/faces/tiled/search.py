"""tiled queries on a runs container, as run queries (SQL parameters).

``Eq``, ``In``, ``Comparison`` (on ``time_start``), ``FullText`` and
``KeysFilter`` narrow a :class:`..records.RunQuery`; ``In`` and ``Contains``
on list-valued run metadata, which SQL here cannot express, filter the rows
of the runs table (no run is opened). Other query types answer 400.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, Self

import orjson
from tiled.queries import Comparison, Contains, Eq, FullText, In, KeysFilter, QueryValueError

from ...beamtime import records
from ...beamtime.format import Database

__all__ = ["TIME_KEYS", "TRANSLATORS", "Narrowable", "View"]

def _column(key: str) -> str | None:
    """The runs-table criterion a query key names (tiled's ``start.``/``stop.`` forms and ``sample.name`` too)."""
    for prefix in ("start.", "stop."):
        if key.startswith(prefix):
            key = key[len(prefix):]
    return records.column_criterion("sample" if key == "sample.name" else key)


TIME_KEYS = ("time_start", "start.time")
#: Keys of a run node's metadata that no search reaches.
_NOT_SEARCHABLE = ("uid", "start.uid", "time_stop", "num_events", "streams", "attrs", "start", "stop", "metadata")
_SEARCHABLE = "plan_name (plan), sample (sample_name), exit_status (status), operator, time_start, metadata.<key> (or start.<key>)"


def _metadata_key(key: str) -> str:
    """The run-metadata key a query key names; ValueError-family if none."""
    explicit = _explicit_key(key)
    if explicit is not None:
        return explicit
    if key in _NOT_SEARCHABLE or key.startswith(("stop.", "sample.", "attrs.")) or not key:
        raise QueryValueError(f"cannot search runs by {key!r}; searchable: {_SEARCHABLE}")
    return key


def _explicit_key(key: str) -> str | None:
    # ``metadata.<key>`` / ``start.<key>`` name a metadata key outright (it may be one no run has yet).
    for prefix in ("metadata.", "start."):
        if key.startswith(prefix) and len(key) > len(prefix):
            return key[len(prefix):]
    return None


def _time(value: Any) -> float:
    try:
        return records.epoch_seconds(value)
    except (ValueError, TypeError) as exc:
        raise QueryValueError(f"time_start: {exc}") from exc


class View:
    """What a runs container selects: SQL criteria, and the few criteria SQL cannot express."""

    def __init__(
        self,
        query: records.RunQuery | None = None,
        filters: tuple[tuple[str, str, str], ...] = (),
        keys: frozenset[str] | None = None,
        reverse: bool = False,
    ) -> None:
        self.query = query or records.RunQuery()
        self.filters = filters  # (op, metadata key, JSON value)
        self.keys = keys
        self.reverse = reverse

    def cache_key(self) -> tuple[Any, ...]:
        return (self.query.key, self.filters, None if self.keys is None else tuple(sorted(self.keys)))

    def narrow(self, **criteria: Any) -> View:
        try:
            query = self.query.narrow(**criteria)
        except (ValueError, TypeError) as exc:
            raise QueryValueError(str(exc)) from exc
        return View(query, self.filters, self.keys, self.reverse)

    def accepts(self, db: Database, run: records.RunRecord) -> bool:
        if self.keys is not None and run.uid not in self.keys:
            return False
        if not self.filters:
            return True
        meta = run.metadata(db)
        for op, key, value_json in self.filters:
            value = orjson.loads(value_json)
            term = meta.get(key)
            if op == "in" and term not in value:
                return False
            if op == "contains" and not (isinstance(term, list) and value in term):
                return False
        return True




class Narrowable(Protocol):
    """What a query narrows: a container with a view that gives a narrower one of its kind."""

    _view: View

    def _narrowed(self, view: View) -> Self: ...

    def _with_filter(self, op: str, key: str, value: Any) -> Self: ...


def _eq[C: "Narrowable"](query: Eq, tree: C) -> C:
    key, value = query.key, query.value
    column = _column(key)
    if column is not None:
        if isinstance(value, (list, dict)):
            raise QueryValueError(f"{key} takes one value; use In for several")
        return tree._narrowed(tree._view.narrow(**{column: value}))
    if key in TIME_KEYS:
        t = _time(value)
        return tree._narrowed(tree._view.narrow(since=t, until=math.nextafter(t, math.inf)))
    explicit = _explicit_key(key)
    if explicit is not None:
        return tree._narrowed(tree._view.narrow(metadata={explicit: value}))
    # A bare name is checked as every face checks it: one no run has is an error (400), not an empty answer.
    return tree._narrowed(tree._view.narrow(**{_metadata_key(key): value}))


def _in[C: "Narrowable"](query: In, tree: C) -> C:
    key, values = query.key, list(query.value)
    column = _column(key)
    if column is not None:
        if any(isinstance(v, (list, dict)) for v in values):
            raise QueryValueError(f"{key}: In takes a list of plain values")
        return tree._narrowed(tree._view.narrow(**{column: values}))
    return tree._with_filter("in", _metadata_key(key), values)


def _contains[C: "Narrowable"](query: Contains, tree: C) -> C:
    if _column(query.key) is not None or query.key in TIME_KEYS:
        raise QueryValueError(f"Contains applies to list-valued run metadata, not to {query.key!r}; use Eq or FullText")
    return tree._with_filter("contains", _metadata_key(query.key), query.value)


def _comparison[C: "Narrowable"](query: Comparison, tree: C) -> C:
    if query.key not in TIME_KEYS:
        raise QueryValueError(f"Comparison is supported on time_start only, not {query.key!r}")
    t = _time(query.value)
    op = getattr(query.operator, "value", query.operator)
    bounds = {
        "ge": {"since": t},
        "gt": {"since": math.nextafter(t, math.inf)},
        "lt": {"until": t},
        "le": {"until": math.nextafter(t, math.inf)},
    }
    if op not in bounds:
        raise QueryValueError(f"unknown comparison operator {op!r}")
    return tree._narrowed(tree._view.narrow(**bounds[op]))


def _full_text[C: "Narrowable"](query: FullText, tree: C) -> C:
    return tree._narrowed(tree._view.narrow(text=query.text))


def _keys_filter[C: "Narrowable"](query: KeysFilter, tree: C) -> C:
    keys = frozenset(query.keys)
    view = tree._view
    if view.keys is not None:
        keys &= view.keys
    return tree._narrowed(View(view.query, view.filters, keys, view.reverse))


#: Query type -> function(query, container) returning the narrower container.
TRANSLATORS = {
    Eq: _eq,
    In: _in,
    Contains: _contains,
    Comparison: _comparison,
    FullText: _full_text,
    KeysFilter: _keys_filter,
}
