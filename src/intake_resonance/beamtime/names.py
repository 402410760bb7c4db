"""Variable names for a stream's fields: safe, unique, and never hiding a value.

Field names come from the beamline's ``data_keys`` and event JSON, so they can
be anything: a coordinate's name (``time``, ``seq_num``), a name holding ``/``
or NUL (which netCDF, Zarr and xarray's groups refuse), the empty string, or
two names that become one once cleaned. :func:`variable_names` maps them to
names a Dataset can hold, by one rule:

1. A name that is already safe (text, not empty, no ``/`` or NUL) and free
   keeps it. Free means: not ``time`` or ``seq_num``, not another variable's,
   and, for image fields, neither is ``<name>_x`` nor ``<name>_y`` (the
   frame dimensions). Image fields choose first, then scalar fields, each in
   the order given.
2. Any other name is cleaned (``/`` and NUL become ``_``; the empty name
   becomes ``field``) and, while that is taken, gets ``_1``, ``_2``, ...
   (the first free).

A renamed variable keeps the name as stored in its ``field_name`` attribute
(:data:`ORIGINAL_NAME_ATTR`), so no value is lost and none is guessed. A name
holding NUL, which netCDF cannot store in text, is kept instead as a JSON
string in ``field_name_json``. :func:`renamed_attrs` makes these attributes
and :func:`original_name` reads them back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "RESERVED",
    "ORIGINAL_NAME_ATTR",
    "image_dims",
    "is_safe",
    "variable_names",
    "renamed_attrs",
    "original_name",
]

#: Names the Dataset's coordinates take.
RESERVED = frozenset({"time", "seq_num"})

#: Attribute that keeps a renamed field's name as stored.
ORIGINAL_NAME_ATTR = "field_name"

_BAD = ("/", "\0")


def image_dims(variable: str) -> tuple[str, str]:
    """The frame dimensions of an image variable: ``(<variable>_x, <variable>_y)``."""
    return f"{variable}_x", f"{variable}_y"


def is_safe(name: object) -> bool:
    """True for a non-empty text name without ``/`` or NUL."""
    return isinstance(name, str) and name != "" and not any(c in name for c in _BAD)


def _clean(name: object) -> str:
    text = name if isinstance(name, str) else str(name)
    for c in _BAD:
        text = text.replace(c, "_")
    return text or "field"


def variable_names(scalars: Iterable[str], images: Iterable[str] = ()) -> dict[str, str]:
    """Map each field name to its variable name, by the module's rule.

    Parameters
    ----------
    scalars : iterable of str
        Fields whose values are in the events.
    images : iterable of str
        Fields with frames; their variables take two more names for their
        dimensions (:func:`image_dims`).

    Returns
    -------
    dict
        Field name as stored -> variable name; a name given twice maps once.
    """
    scalars, images = list(dict.fromkeys(scalars)), list(dict.fromkeys(images))
    scalars = [s for s in scalars if s not in images]
    taken: set[str] = set(RESERVED)
    out: dict[str, str] = {}

    def names_of(candidate: str, image: bool) -> tuple[str, ...]:
        return (candidate, *image_dims(candidate)) if image else (candidate,)

    def claim(field: str, candidate: str, image: bool) -> bool:
        wanted = names_of(candidate, image)
        if any(n in taken for n in wanted):
            return False
        taken.update(wanted)
        out[field] = candidate
        return True

    # Pass 1: safe, free names keep them, so a clean name never loses it to a cleaned one.
    for fields, image in ((images, True), (scalars, False)):
        for field in fields:
            if is_safe(field):
                claim(field, field, image)
    # Pass 2: the rest are cleaned, then numbered until free.
    for fields, image in ((images, True), (scalars, False)):
        for field in fields:
            if field in out:
                continue
            base = _clean(field)
            if claim(field, base, image):
                continue
            k = 1
            while not claim(field, f"{base}_{k}", image):
                k += 1
    return out


def renamed_attrs(field: str, var: str) -> dict[str, str]:
    """Attributes that keep a renamed field's stored name (empty when not renamed)."""
    if var == field:
        return {}
    if "\0" in field:
        return {ORIGINAL_NAME_ATTR + "_json": json.dumps(field)}
    return {ORIGINAL_NAME_ATTR: field}


def original_name(var: str, attrs: Mapping[str, Any]) -> str:
    """The field name as stored of the variable ``var`` with ``attrs``."""
    if ORIGINAL_NAME_ATTR + "_json" in attrs:
        return str(json.loads(attrs[ORIGINAL_NAME_ATTR + "_json"]))
    return str(attrs.get(ORIGINAL_NAME_ATTR, var))
