"""Run search criteria, turned into a SQL WHERE clause with parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["RunQuery", "epoch_seconds"]

_EXACT = {"plan_name": "r.plan_name", "sample": "s.name", "exit_status": "r.exit_status", "operator": "r.operator"}


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
        Exact match (``sample`` is the sample's name); a list matches any of
        its values; ``None`` matches NULL (e.g. ``exit_status=None``: runs
        still open).
    since, until
        Bounds on ``time_start`` (``since`` inclusive, ``until`` exclusive),
        as accepted by :func:`epoch_seconds`.
    text
        Substring of the uid, plan, sample name, operator or metadata text.
    metadata
        A dict of exact matches on top-level keys of the run metadata.
    """

    criteria: tuple[tuple[str, Any], ...] = ()

    def narrow(self, metadata: dict[str, Any] | None = None, **criteria: Any) -> RunQuery:
        """A new query with these criteria added; unknown names are metadata keys."""
        items = list(self.criteria)
        for key, value in criteria.items():
            if key in ("since", "until"):
                items.append((key, epoch_seconds(value)))
            elif key in _EXACT or key == "text":
                items.append((key, tuple(value) if isinstance(value, (list, tuple, set)) else value))
            else:
                items.append((f"metadata.{key}", value))
        for key, value in (metadata or {}).items():
            items.append((f"metadata.{key}", value))
        return RunQuery(tuple(items))

    def as_dict_list(self) -> list[dict[str, Any]]:
        """The criteria as plain dicts (for catalog arguments and YAML)."""
        out: list[dict[str, Any]] = []
        for key, value in self.criteria:
            if key.startswith("metadata."):
                out.append({"metadata": {key[len("metadata."):]: value}})
            else:
                out.append({key: list(value) if isinstance(value, tuple) else value})
        return out

    @classmethod
    def from_dicts(cls, criteria: Any) -> RunQuery:
        """Build from a dict or a list of dicts of criteria (see :meth:`narrow`)."""
        query = cls()
        for item in [criteria] if isinstance(criteria, dict) else list(criteria or []):
            query = query.narrow(**item)
        return query

    def where(self) -> tuple[str, list[Any]]:
        """The WHERE clause (possibly empty) and its parameters."""
        clauses: list[str] = []
        params: list[Any] = []
        for key, value in self.criteria:
            if key in _EXACT:
                column = _EXACT[key]
                values = value if isinstance(value, tuple) else (value,)
                alts = [f"{column} IS NULL" if v is None else f"{column} = ?" for v in values]
                params += [v for v in values if v is not None]
                clauses.append("(" + " OR ".join(alts or ["0"]) + ")")
            elif key == "since":
                clauses.append("r.time_start >= ?")
                params.append(value)
            elif key == "until":
                clauses.append("r.time_start < ?")
                params.append(value)
            elif key == "text":
                pattern = "%" + _like_escape(str(value)) + "%"
                fields = ("r.uid", "r.plan_name", "s.name", "r.operator", "r.metadata")
                clauses.append("(" + " OR ".join(f"{f} LIKE ? ESCAPE '\\'" for f in fields) + ")")
                params += [pattern] * len(fields)
            else:
                # The JSON path is a parameter too; quoting the key keeps dots in it literal.
                name = key[len("metadata."):]
                clauses.append("json_extract(r.metadata, ?) IS ?")
                params.append('$."' + name.replace('"', '""') + '"')
                params.append(_sql_json_value(value))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _sql_json_value(value: Any) -> Any:
    # json_extract returns booleans as 0/1 and objects/arrays as JSON text.
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return value
