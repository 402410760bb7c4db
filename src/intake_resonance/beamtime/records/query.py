"""Run search criteria, turned into a SQL WHERE clause with parameters."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from ..errors import SearchCriterionError

__all__ = ["ALIASES", "NAMES", "RunQuery", "column_criterion", "epoch_seconds"]

_EXACT = {"plan_name": "r.plan_name", "sample": "s.name", "exit_status": "r.exit_status", "operator": "r.operator"}
#: Other names of the same run properties: as entry metadata, Dataset attrs and ``stack(by=)`` name them.
ALIASES = {"sample_name": "sample", "plan": "plan_name", "status": "exit_status"}
#: Every name a criterion may have besides a key of some run's metadata.
NAMES = (*_EXACT, *ALIASES, "since", "until", "text", "metadata")


def column_criterion(name: str) -> str | None:
    """The criterion a name of a runs-table column goes by (``sample_name`` -> ``sample``); None for other names.

    Every face's vocabulary ends here: tiled's ``start.plan_name`` or
    ``sample.name`` are translated to one of these names first.
    """
    name = ALIASES.get(name, name)
    return name if name in _EXACT else None


def epoch_seconds(value: Any) -> float:
    """A time given as epoch seconds, ``datetime``, ``numpy.datetime64`` or ISO 8601 text -> epoch seconds.

    Times without a time zone are taken as UTC (as the Datasets' ``time``).
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot read {value!r} as a time (use ISO 8601, e.g. '2026-03-05T09:00')") from exc
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.timestamp()


@dataclass(frozen=True)
class RunQuery:
    """Criteria narrowing the runs of a beamtime; every value becomes a SQL parameter.

    Built with :meth:`narrow`; each call adds criteria that all must hold, so
    chained searches narrow further.

    Criteria
    --------
    plan_name, sample, exit_status, operator
        Exact match (``sample`` is the sample's name); also named
        ``plan``, ``sample_name`` and ``status``; a list (of any length)
        matches any of its values; ``None`` matches NULL (e.g.
        ``exit_status=None``: runs still open).
    since, until
        Bounds on ``time_start`` (``since`` inclusive, ``until`` exclusive),
        as accepted by :func:`epoch_seconds`.
    text
        Substring of the uid, plan, sample name, operator or metadata text,
        in any letter case (``"ü"`` finds ``"Ü"``); metadata matches as
        stored and with its JSON escapes decoded (``json.dumps`` writes
        ``"Größe"`` as ``"Gr\\u00f6\\u00dfe"``).
    metadata
        A dict of exact matches on top-level keys of the run metadata
        (``None`` matches a null or missing key).

    A value of the wrong type raises :class:`~intake_resonance.beamtime.errors.SearchCriterionError`
    (a ``ValueError``) naming the criterion.
    """

    criteria: tuple[tuple[str, Any], ...] = ()
    #: Metadata keys given as bare names (``flag=1``), which some run's metadata must have
    #: (:func:`~intake_resonance.beamtime.records.runs.where_clause` checks): a misspelt
    #: name is an error, not an empty answer. ``metadata={...}`` names keys without that check.
    bare: tuple[str, ...] = ()

    def narrow(self, metadata: dict[str, Any] | None = None, **criteria: Any) -> RunQuery:
        """A new query with these criteria added; unknown names are metadata keys.

        Raises
        ------
        SearchCriterionError
            A value of the wrong type (a ``ValueError`` too), naming the criterion.
        """
        items = list(self.criteria)
        bare = list(self.bare)
        for key, value in criteria.items():
            key = ALIASES.get(key, key)
            if key in ("since", "until"):
                try:
                    items.append((key, epoch_seconds(value)))
                except (TypeError, ValueError) as exc:
                    raise SearchCriterionError(f"search criterion {key!r}: {exc}") from exc
            elif key in _EXACT:
                items.append((key, _exact_value(key, value)))
            elif key == "text":
                if not isinstance(value, str) or not _encodes(value):
                    raise _wrong_type(key, "a string", value)
                items.append((key, value))
            else:
                items.append((f"metadata.{key}", _json_value(key, value)))
                bare.append(key)
        if metadata is not None and not isinstance(metadata, dict):
            raise _wrong_type("metadata", "a dict of run-metadata keys and values", metadata)
        for key, value in (metadata or {}).items():
            if not isinstance(key, str) or not _encodes(key):
                raise _wrong_type("metadata", "string keys", key)
            items.append((f"metadata.{key}", _json_value(f"metadata.{key}", value)))
        return RunQuery(tuple(items), tuple(dict.fromkeys(bare)))

    @property
    def key(self) -> str:
        """The criteria as canonical JSON: equal only for the same names, values and JSON types.

        What caches key a search by. Python equality would make ``True``,
        ``1`` and ``1.0`` one key (they hash alike) and refuse lists.
        """
        return json.dumps([[name, value] for name, value in self.criteria], sort_keys=True, allow_nan=True, default=repr)

    def as_dict_list(self) -> list[dict[str, Any]]:
        """The criteria as plain dicts (for catalog arguments and YAML)."""
        out: list[dict[str, Any]] = []
        for key, value in self.criteria:
            if key.startswith("metadata."):
                name = key[len("metadata."):]
                out.append({name: value} if name in self.bare else {"metadata": {name: value}})
            else:
                out.append({key: list(value) if isinstance(value, tuple) else value})
        return out

    @classmethod
    def from_dicts(cls, criteria: Any) -> RunQuery:
        """Build from a dict or a list of dicts of criteria (see :meth:`narrow`)."""
        query = cls()
        if criteria is not None and not isinstance(criteria, (dict, list, tuple)):
            raise _wrong_type("criteria", "a dict or a list of dicts", criteria)
        for item in [criteria] if isinstance(criteria, dict) else list(criteria or []):
            if not isinstance(item, dict) or not all(isinstance(k, str) for k in item):
                raise _wrong_type("criteria", "a dict or a list of dicts", item)
            query = query.narrow(**item)
        return query

    def where(self) -> tuple[str, list[Any]]:
        """The WHERE clause (possibly empty) and its parameters."""
        clauses: list[str] = []
        params: list[Any] = []
        for key, value in self.criteria:
            if key in _EXACT:
                clauses.append(_exact_clause(_EXACT[key], value, params))
            elif key == "since":
                clauses.append("r.time_start >= ?")
                params.append(value)
            elif key == "until":
                clauses.append("r.time_start < ?")
                params.append(value)
            elif key == "text":
                # A Python function on our connection (sql_functions): LIKE folds ASCII only,
                # reads no JSON escapes and ends its pattern at a NUL.
                if "\0" in value:
                    clauses.append("0")  # no text a user searches for holds NUL
                else:
                    clauses.append("resonance_text_match(?, r.uid, r.plan_name, s.name, r.operator, r.metadata)")
                    params.append(value.casefold())
            else:
                clauses.append(_metadata_clause(key[len("metadata."):], value, params))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _wrong_type(criterion: str, expected: str, value: Any) -> SearchCriterionError:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return SearchCriterionError(f"search criterion {criterion!r} takes {expected}, not {type(value).__name__} {shown}")


def _plain(value: Any) -> bool:
    """A value a column can equal: None, a string SQLite can hold, a finite number."""
    if value is None:
        return True
    if isinstance(value, str):
        return _encodes(value)
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")  # a lone surrogate cannot reach SQLite
    except UnicodeEncodeError:
        return False
    return True


def _exact_value(key: str, value: Any) -> Any:
    """A column criterion: one value, None, or any number of them (a tuple)."""
    expected = "a string, a finite number, None, or a list of them"
    if _plain(value):
        return value
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise _wrong_type(key, expected, value)
    values = tuple(value)
    for v in values:
        if not _plain(v):
            raise _wrong_type(key, expected, v)
    return values


def _json_value(criterion: str, value: Any) -> Any:
    """A metadata criterion: any value JSON can hold."""
    if isinstance(value, str) and not _encodes(value):
        raise _wrong_type(criterion, "a string SQLite can hold", value)
    try:
        json.dumps(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise _wrong_type(criterion, f"a value JSON can hold ({exc})", value) from None
    return value


def _exact_clause(column: str, value: Any, params: list[Any]) -> str:
    if not isinstance(value, tuple):
        if value is None:
            return f"{column} IS NULL"
        params.append(value)
        return f"{column} = ?"
    alts = [f"{column} IS NULL"] if None in value else []
    # json_each would end a string at a NUL ("scan\0" -> "scan"): such a value matches nothing.
    present = [v for v in value if v is not None and not (isinstance(v, str) and "\0" in v)]
    if present:
        # One JSON parameter, however many values: SQLite limits the number of ? per statement.
        alts.append(f"{column} IN (SELECT value FROM json_each(?))")
        params.append(json.dumps(present))
    return "(" + " OR ".join(alts or ["0"]) + ")"


def _metadata_clause(name: str, value: Any, params: list[Any]) -> str:
    """Exact match on a top-level run-metadata key.

    ``json_each`` reads keys and strings with their escapes decoded (the
    beamline's ``json.dumps`` writes ``\\u00fc``), which a ``json_extract``
    path does not. Metadata SQLite cannot read as JSON (``json.dumps`` writes
    ``NaN``) is decoded in Python; metadata that does not decode at all matches
    nothing, rather than failing the whole search. ``None`` matches a null or
    missing key, and a run without metadata.
    """
    valid = "typeof(r.metadata) = 'text' AND json_valid(r.metadata)"
    # Metadata SQLite refuses as JSON (the NaN that json.dumps writes) is read in Python instead.
    fallback = "resonance_metadata_match(r.metadata, ?, ?)"
    params.append(name)
    if value is None:
        found = "EXISTS (SELECT 1 FROM json_each(r.metadata) j WHERE j.key = ? AND j.type != 'null')"
        params += [name, "null"]
        return f"(CASE WHEN {valid} THEN NOT {found} ELSE {fallback} END)"
    if isinstance(value, bool):
        test = "j.type = ?"
        params.append("true" if value else "false")
    elif isinstance(value, (int, float)):
        test = "j.type IN ('integer', 'real') AND j.value = ?"
        params.append(value)
    elif isinstance(value, str):
        test = "j.type = 'text' AND j.value = ?"
        params.append(value)
    else:  # a list or dict: equal as JSON values, whatever the key order or escapes
        test = "j.type IN ('array', 'object') AND resonance_json_equal(j.value, ?)"
        params.append(json.dumps(value))
    found = f"EXISTS (SELECT 1 FROM json_each(r.metadata) j WHERE j.key = ? AND {test})"
    params += [name, json.dumps(value)]
    return f"(CASE WHEN {valid} THEN {found} ELSE {fallback} END)"
