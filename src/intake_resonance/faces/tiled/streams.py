"""Run and stream nodes: a run's metadata and streams, a stream as tiled's xarray dataset.

Every variable comes from the one builder (:func:`..dataset.open_run_dataset`);
each image variable with frames is served by a :class:`FrameArrayAdapter`
over a :class:`..frames.FrameStack` built from :func:`..records.frame_refs`,
one frame per block, so a block request reads only its frame.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import numpy as np
from tiled.adapters.array import ArrayAdapter
from tiled.adapters.xarray import DatasetAdapter
from tiled.ndslice import NDBlock
from tiled.structures.array import ArrayStructure, BuiltinDtype
from tiled.structures.core import Spec

from ...beamtime import records
from ...beamtime.errors import BeamtimeDataError
from ...beamtime.format import Database
from ...beamtime.frames import FrameStack
from ...beamtime.names import image_dims, original_name
from ...datasets.open import open_run_dataset, run_attrs
from ._bounded import StreamDataset, TextArrayAdapter, held_bytes, refuse_beyond
from ._http import bad_request, served

__all__ = ["DEFAULT_MAX_BYTES", "FrameArrayAdapter", "StreamMap", "run_metadata", "stream_dataset"]

#: Largest frame read one request may ask for: 256 MiB (64 frames of 1024 x 1024 int32).
DEFAULT_MAX_BYTES = 256 * 2**20

def _variable_adapter(name: str, var: Any, spec: str, max_bytes: int) -> ArrayAdapter:
    """A scalar column (or a lazy all-NaN frame variable) as a tiled array; text is made fixed-width only when read."""
    if getattr(var.data, "dtype", None) == np.dtype(object):
        return TextArrayAdapter(var.values, tuple(var.dims), dict(var.attrs), spec, max_bytes)
    return ArrayAdapter.from_array(var.data, dims=tuple(var.dims), metadata={"attrs": dict(var.attrs)}, specs=[Spec(spec)])


class FrameArrayAdapter(ArrayAdapter):
    """An image field's frames as a tiled array, one frame per block.

    Every read goes through the field's :class:`~intake_resonance.beamtime.frames.FrameStack`,
    which reads only the frames asked for; a read of more than ``max_bytes``
    is answered 413 before any frame is read.
    """

    def __init__(
        self, stack: FrameStack, dims: tuple[str, ...], attrs: dict[str, Any], max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        n, x, y = stack.shape
        structure = ArrayStructure(
            data_type=BuiltinDtype.from_numpy_dtype(np.dtype(stack.dtype)),
            shape=stack.shape,
            chunks=((1,) * n if n else (0,), (x,), (y,)),
            dims=dims,
        )
        super().__init__(stack, structure, metadata={"attrs": attrs}, specs=[Spec("xarray_data_var")])
        self.stack = stack
        self.max_bytes = int(max_bytes)

    def read(self, slice: Any = None) -> np.ndarray:  # noqa: A002 - tiled passes it by this name
        """Frames (or a part of them) selected by ``slice``, as a NumPy array."""
        key = tuple(slice) if slice else (builtins.slice(None),)
        self._check_size(key)
        with served():
            return np.asarray(self.stack[key])

    def read_block(self, block: Any, slice: Any = None) -> np.ndarray:  # noqa: A002
        """One block (one frame), optionally sliced within it."""
        whole = NDBlock(*block).slice_from_chunks(self.structure().chunks)
        frames = self.read(whole)
        return frames[tuple(slice)] if slice else frames

    def _check_size(self, key: tuple[Any, ...]) -> None:
        # tiled refuses an answer beyond its size limit only after reading it;
        # refuse before reading hundreds of frames for nothing.
        try:
            shape = np.broadcast_to(np.empty((), dtype=bool), self.stack.shape)[key].shape
        except (IndexError, TypeError, ValueError) as exc:
            raise bad_request(f"cannot slice frames of shape {self.stack.shape} with {key!r}: {exc}") from exc
        nbytes = math.prod(shape) * np.dtype(self.stack.dtype).itemsize
        refuse_beyond(nbytes, self.max_bytes, "read the frames block by block or a smaller slice")


def _frame_field(name: str, var: Any) -> str | None:
    """The stored field name of an image variable (None for other variables)."""
    if var.ndim == 3 and var.dims == ("time", *image_dims(name)):
        return original_name(name, var.attrs)
    return None


def stream_dataset(
    db: Database, uid: str, stream: str, attempts: int = 3, max_bytes: int = DEFAULT_MAX_BYTES
) -> DatasetAdapter:
    """A stream's dataset node: the one builder's Dataset, its frames served through FrameStack.

    The builder names, types and describes every variable; each image
    variable's frames are then read through a :class:`FrameStack` of the
    field's references, so a block request reads only its frames (the
    builder's dask array is never computed).
    """
    for _ in range(attempts):
        ds = open_run_dataset(db, uid, stream)
        try:
            seq_num = ds["seq_num"].values
            contents: dict[str, ArrayAdapter] = {}
            changed, memory = False, 0
            for key, var in ds.data_vars.items():
                name = str(key)
                field = _frame_field(name, var)
                refs = None if field is None else records.frame_refs(db, uid, field, stream)
                if field is None or refs is None or refs.frame_shape is None:
                    # scalars, and a declared image field without frames (all NaN)
                    contents[name] = _variable_adapter(name, var, "xarray_data_var", max_bytes)
                    memory += held_bytes(var) if isinstance(var.data, np.ndarray) else 0  # a lazy all-NaN field holds nothing
                elif not np.array_equal(refs.seq_num, seq_num):
                    changed = True  # a commit landed between the two reads: read again
                    break
                else:
                    stack = FrameStack(db.zarr_path, refs, db.path, run=uid, stream=stream, field=field, identity=db.identity)
                    contents[name] = FrameArrayAdapter(stack, tuple(str(d) for d in var.dims), dict(var.attrs), max_bytes)
            for key, var in ds.coords.items():
                contents[str(key)] = _variable_adapter(str(key), var, "xarray_coord", max_bytes)
                memory += held_bytes(var)
            attrs = dict(ds.attrs)
        finally:
            ds.close()
        if not changed:
            return StreamDataset.of(contents, attrs, max_bytes, memory)
    raise BeamtimeDataError("the run kept changing while it was read; try again", db.path, run=uid, stream=stream)


class StreamSource(Protocol):
    """Where a run's stream nodes come from (the served beamtime, which caches them)."""

    def stream_node(self, uid: str, stream: str) -> DatasetAdapter: ...


class StreamMap(Mapping[str, DatasetAdapter]):
    """A run's streams, each built when first asked for."""

    def __init__(self, source: StreamSource, uid: str, streams: list[str]) -> None:
        self._source, self._uid, self._streams = source, uid, streams

    def __getitem__(self, name: str) -> DatasetAdapter:
        if name not in self._streams:
            raise KeyError(name)
        with served():
            return self._source.stream_node(self._uid, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._streams)

    def __len__(self) -> int:
        return len(self._streams)


def run_metadata(db: Database, run: records.RunRecord, streams: list[str]) -> dict[str, Any]:
    """A run node's metadata: the run row, Bluesky-like start/stop documents, sample, attrs."""
    sample = records.get_sample(db, run.sample_id)
    user = run.metadata(db)
    start = {**user, "uid": run.uid, "time": run.time_start, "plan_name": run.plan_name}
    for key, value in (("operator", run.operator), ("sample_name", run.sample_name)):
        if value is not None:
            start[key] = value
    stop = None
    if run.time_stop is not None:
        stop = {"run_start": run.uid, "time": run.time_stop, "exit_status": run.exit_status, "num_events": run.num_events}
    return {
        "uid": run.uid,
        "plan_name": run.plan_name,
        "sample_name": run.sample_name,
        "operator": run.operator,
        "time_start": run.time_start,
        "time_stop": run.time_stop,
        "exit_status": run.exit_status,
        "num_events": run.num_events,
        "streams": streams,
        "sample": None if sample is None else {
            "name": sample.name, "formula": sample.formula, "serial": sample.serial, "tags": sample.tags,
            "beamline_pos": sample.beamline_pos, "extra": sample.extra,
        },
        "metadata": user,
        "start": start,
        "stop": stop,
        "attrs": run_attrs(db, run),
    }

