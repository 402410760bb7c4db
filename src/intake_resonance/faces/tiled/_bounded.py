"""Answers bounded as a whole: text columns built only when read, a stream's full answer refused beyond ``max_bytes``.

tiled serves no object arrays, so a text column goes out as fixed-width
strings: as wide as its longest value, times its rows. :class:`TextArrayAdapter`
keeps the values as they are (variable width) and builds the fixed-width
array only for a read, after checking its size. :class:`StreamDataset` is a
stream's container: a read of the whole container (tiled's
``/container/full``, which JSON and CSV then flatten over every dimension)
is refused with 413 when the answer would pass ``max_bytes``: its arrays'
bytes for a binary format (HDF5, netCDF), their values broadcast over every
dimension for a text one (JSON, CSV) or one not named. :class:`AnswerFormat`,
a middleware of the served app, tells the read which format was asked for.
"""

from __future__ import annotations

import builtins
import math
from contextvars import ContextVar
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import orjson
from fastapi import HTTPException
from tiled.adapters.array import ArrayAdapter
from tiled.adapters.xarray import DatasetAdapter
from tiled.structures.array import ArrayStructure, BuiltinDtype
from tiled.structures.core import Spec

__all__ = ["TOO_LARGE", "AnswerFormat", "StreamDataset", "TextArrayAdapter", "held_bytes", "refuse_beyond"]

TOO_LARGE = 413
NOT_ACCEPTABLE = 406
#: Bytes one value takes at most once flattened into a text answer (JSON, CSV): a float64 as text.
FLAT_CELL = 24


#: Formats that store arrays as they are (no flattening): their answer is about the arrays' bytes.
BINARY_FORMATS = frozenset({"application/x-hdf5", "application/x-netcdf", "application/octet-stream"})
_asked: ContextVar[str | None] = ContextVar("resonance_answer_format", default=None)


class AnswerFormat:
    """ASGI middleware: notes the format a request asks for (``?format=`` or ``Accept``) for the reads it leads to."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        headers = dict(scope.get("headers") or [])
        asked = (query.get("format") or [headers.get(b"accept", b"").decode("latin-1")])[0] or None
        token = _asked.set(asked)
        try:
            await self.app(scope, receive, send)
        finally:
            _asked.reset(token)


def refuse_beyond(nbytes: int, max_bytes: int, hint: str) -> None:
    """413 (before anything is read) when an answer would hold more than ``max_bytes``."""
    if nbytes > max_bytes:
        raise HTTPException(
            status_code=TOO_LARGE,
            detail=f"the answer would hold {nbytes} bytes, more than this server's limit of {max_bytes}; {hint}",
        )


def held_bytes(var: Any) -> int:
    """Bytes a served variable held in memory keeps: its array, and for text each string's own length."""
    values = var.values
    extra = sum(len(v) for v in values if isinstance(v, str)) if values.dtype == object else 0
    return int(values.nbytes) + extra


def as_text(value: Any) -> str:
    """A value of a text or mixed column as served: strings as they are, gaps empty, others as JSON."""
    return value if isinstance(value, str) else "" if value is None else orjson.dumps(value).decode()


class TextArrayAdapter(ArrayAdapter):
    """A text (or mixed) column as tiled's fixed-width strings, made only when read and only within ``max_bytes``."""

    def __init__(self, values: np.ndarray, dims: tuple[str, ...], attrs: dict[str, Any], spec: str, max_bytes: int) -> None:
        texts = np.empty(len(values), dtype=object)
        texts[:] = [as_text(v) for v in values]
        self.width = max(1, max((len(t) for t in texts), default=1))
        n = len(texts)
        structure = ArrayStructure(
            data_type=BuiltinDtype.from_numpy_dtype(np.dtype(f"<U{self.width}")), shape=(n,), chunks=((n,) if n else (0,),), dims=dims
        )
        super().__init__(texts, structure, metadata={"attrs": attrs}, specs=[Spec(spec)])
        self.texts = texts
        self.max_bytes = int(max_bytes)

    def read(self, slice: Any = None) -> np.ndarray:  # noqa: A002 - tiled passes it by this name
        """The values selected by ``slice`` as fixed-width strings (413 when too large)."""
        part = self.texts[tuple(slice) if slice else builtins.slice(None)]
        refuse_beyond(int(np.size(part)) * 4 * self.width, self.max_bytes, "ask for fewer rows")
        return np.array(np.asarray(part).tolist(), dtype=f"<U{self.width}")

    def read_block(self, block: Any, slice: Any = None) -> np.ndarray:  # noqa: A002
        """The only block (the whole column), optionally sliced."""
        return self.read(slice)


class StreamDataset(DatasetAdapter):
    """A stream as tiled's xarray dataset whose whole-container answer is bounded by ``max_bytes``."""

    max_bytes: int
    #: Bytes its arrays hold in memory (scalar columns; text at its own length): what caches count.
    memory: int

    @classmethod
    def of(cls, contents: dict[str, ArrayAdapter], attrs: dict[str, Any], max_bytes: int, memory: int) -> StreamDataset:
        """The container of ``contents`` (tiled's array adapters), holding ``memory`` bytes."""
        node = cls(contents, metadata={"attrs": attrs}, specs=[Spec("xarray_dataset")])
        node.max_bytes, node.memory = int(max_bytes), int(memory)
        return node

    def read(self, fields: Any = None) -> Any:
        """The container for a full read, refused (413) when its flattened answer would pass ``max_bytes``."""
        names = list(fields) if fields else list(self)
        asked = _asked.get()
        if asked == "application/x-hdf5" and any(isinstance(self[name], TextArrayAdapter) for name in names):
            # tiled writes HDF5 through h5py, which takes no NumPy unicode arrays: say so rather than fail with 500
            raise HTTPException(
                status_code=NOT_ACCEPTABLE,
                detail="this stream holds text columns, which the HDF5 export cannot hold; "
                "ask for application/x-netcdf or application/json, or leave the text fields out (?field=...)",
            )
        sizes: dict[str, int] = {}
        nbytes = 0
        for name in names:
            structure = self[name].structure()
            sizes.update(zip(structure.dims or (), structure.shape))
            nbytes += math.prod(structure.shape) * structure.data_type.to_numpy_dtype().itemsize
        if asked not in BINARY_FORMATS:  # JSON and CSV broadcast every variable over every dim
            nbytes = max(nbytes, math.prod(sizes.values()) * len(names) * FLAT_CELL)
        refuse_beyond(nbytes, self.max_bytes, "read the stream's arrays one by one, or fewer fields")
        return super().read(fields)
