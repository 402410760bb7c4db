"""Stack several runs into one lazy Dataset along a new dimension.

Runs line up either by event number (the default) or on event coordinates
(``align="energy_position"``: frames of the same energy side by side).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dask.array
import numpy as np
import pandas as pd
import xarray as xr

from ..beamtime.errors import LayoutError
from ..beamtime.records.arrays import with_missing
from .attrs import where

__all__ = ["run_label", "shared_attrs", "stack_runs"]


def _error(ds: xr.Dataset, message: str) -> LayoutError:
    return LayoutError(message, **where(ds))


def run_label(ds: xr.Dataset, by: str | None) -> Any:
    """The label of a run: its uid, a Dataset attribute, or a variable constant through the run.

    Parameters
    ----------
    ds : Dataset
        One run.
    by : str or None
        Attribute or variable name; None gives the uid.

    Raises
    ------
    LayoutError
        (a ``ValueError``) the run has no such attribute or variable, or the
        variable takes several values.
    """
    uid = ds.attrs.get("uid", "?")
    if by is None:
        return uid
    if by in ds.attrs:
        return ds.attrs[by]
    if by in ds.variables:
        values = np.unique(np.asarray(ds[by].values).ravel())
        values = values[~pd.isna(values)] if values.dtype.kind in "fcmM" else values
        if len(values) != 1:
            raise _error(
                ds,
                f"{by!r} is not one value across the run (found {len(values)} distinct); "
                "stack by an attribute or a constant variable, or align on it with align=",
            )
        return values[0].item() if hasattr(values[0], "item") else values[0]
    raise _error(ds, f"no attribute or variable {by!r} to stack by")


_PLAIN = (str, int, float, bool)


def _same(a: Any, b: Any) -> bool:
    if type(a) is type(b) and type(a) in _PLAIN:
        return bool(a == b)  # what array_equal says of two scalars (NaN differs from NaN), without arrays
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except (TypeError, ValueError):
        return bool(a == b)


def shared_attrs(attrs: Sequence[Mapping[str, Any]], context: Any = None) -> dict[str, Any]:
    """Attributes every part has with one value; the rest are dropped (xarray's combine_attrs hook)."""
    if not attrs:
        return {}
    first, rest = attrs[0], attrs[1:]
    return {k: v for k, v in first.items() if all(k in a and _same(a[k], v) for a in rest)}


def _grid(datasets: Sequence[xr.Dataset], name: str, tolerance: float | None) -> np.ndarray:
    """Sorted grid of one coordinate over all runs; with a tolerance, nearby values merge into their mean."""
    for ds in datasets:
        if name not in ds.variables or ds[name].dims != ("time",):
            raise _error(ds, f"cannot align on {name!r}: the run has no per-event {name!r} (fields: {sorted(map(str, ds.data_vars))})")
        values = np.asarray(ds[name].values)
        if pd.isna(values).any():
            raise _error(ds, f"cannot align on {name!r}: {int(pd.isna(values).sum())} events have no value")
    values = np.unique(np.concatenate([np.asarray(ds[name].values) for ds in datasets]))
    if tolerance is None or values.dtype.kind not in "iuf" or values.size == 0:
        return values
    groups: list[list[float]] = [[values[0]]]
    for v in values[1:]:
        if v - groups[-1][0] <= tolerance:  # within tolerance of the group's first value
            groups[-1].append(v)
        else:
            groups.append([v])
    return np.array([np.mean(g) for g in groups])


def _snap(values: np.ndarray, grid: np.ndarray, tolerance: float | None) -> np.ndarray:
    if tolerance is None or grid.dtype.kind not in "iuf":
        return values
    pos = np.clip(np.searchsorted(grid, values), 1, len(grid) - 1) if len(grid) > 1 else np.zeros(len(values), int)
    if len(grid) > 1:
        pos = np.where(np.abs(values - grid[pos - 1]) <= np.abs(values - grid[pos]), pos - 1, pos)
    return np.asarray(grid[pos])


def _aligned(ds: xr.Dataset, align: list[str], grids: Mapping[str, np.ndarray], tolerance: float | None) -> xr.Dataset:
    """One run with its ``time`` dimension replaced by the ``align`` coordinates (a grid)."""
    part = ds.drop_indexes("time").rename_dims(time="event")
    snapped = {name: ("event", _snap(np.asarray(ds[name].values), grids[name], tolerance), ds[name].attrs) for name in align}
    part = part.drop_vars(align).assign_coords(snapped)
    keys = pd.MultiIndex.from_arrays([part[n].values for n in align], names=align)
    dup = keys[keys.duplicated()]
    if len(dup):
        what = ", ".join(f"{n}={v.item() if hasattr(v, 'item') else v!r}" for n, v in zip(align, dup[0]))
        raise _error(
            ds,
            f"cannot align on {', '.join(align)}: {len(dup)} events repeat a value of another (e.g. {what}); "
            "align on more coordinates (e.g. align=['energy_position', 'polarization_position'])"
            + ("" if tolerance is None else " or use a smaller tolerance"),
        )
    if len(align) == 1:
        return part.swap_dims(event=align[0])
    return part.set_index(event=align).unstack("event")


def _take_padded(data: Any, axis: int, src: np.ndarray) -> Any:
    """``data`` taken along ``axis`` at ``src``; -1 gives the dtype's missing value (NaN, NaT, None).

    Done by hand on dask arrays: xarray's masked reindex builds a mask whose
    chunks disagree with the frames' and makes dask warn about chunk growth.
    """
    dtype, fill = with_missing(data.dtype)
    if (src >= 0).all():
        return data[(slice(None),) * axis + (src,)]
    shape = list(data.shape)
    shape[axis] = 1
    chunks = list(data.chunks)
    chunks[axis] = (1,)
    filler = dask.array.full(shape, fill, dtype=dtype, chunks=tuple(chunks))
    padded = dask.array.concatenate([data.astype(dtype), filler], axis=axis)
    return padded[(slice(None),) * axis + (np.where(src < 0, data.shape[axis], src),)]


def _encoding_for(encoding: Mapping[str, Any], dtype: np.dtype) -> dict[str, Any]:
    """A variable's encoding once padding made it ``dtype``: the stored dtype kept only while the values still fit it.

    A frame variable remembers its stored ``int32`` in ``encoding["dtype"]``;
    kept on frames padded with NaN, ``to_netcdf``/``to_zarr`` would cast NaN to
    ``int32`` and write INT_MIN where no frame was.
    """
    out = dict(encoding)
    stored = out.get("dtype")
    if stored is not None and np.dtype(stored) != np.dtype(dtype):
        for key in ("dtype", "_FillValue", "missing_value", "scale_factor", "add_offset"):
            out.pop(key, None)
    return out


def _pad_to(part: xr.Dataset, targets: Mapping[str, pd.Index]) -> xr.Dataset:
    """Reindex a run onto the common grid: NumPy variables through xarray, dask ones by hand."""
    for dim, target in targets.items():
        src = part.indexes[dim].get_indexer(target)
        if len(src) == part.sizes[dim] and (src == np.arange(len(src))).all():
            continue
        lazy = {k: v for k, v in part.data_vars.items() if dim in v.dims and isinstance(v.data, dask.array.Array)}
        moved = {}
        for k, v in lazy.items():
            data = _take_padded(v.data, v.dims.index(dim), src)
            moved[k] = xr.Variable(v.dims, data, v.attrs, _encoding_for(v.encoding, data.dtype))
        part = part.drop_vars(list(lazy)).reindex({dim: target}).assign(moved)
    return part


def _fill_missing(parts: list[xr.Dataset]) -> list[xr.Dataset]:
    """Give every run the dask variables some runs have, all missing, so concat need not mask-reindex them."""
    templates: dict[Any, xr.Variable] = {}
    for p in parts:
        for k, arr in p.data_vars.items():
            if isinstance(arr.data, dask.array.Array):
                templates.setdefault(k, arr.variable)
    # Coordinates some runs have (a motor another run did not record): all missing where absent.
    axes: dict[Any, xr.Variable] = {}
    for p in parts:
        for k, c in p.coords.items():
            if k not in p.indexes and k not in ("time", "seq_num"):
                axes.setdefault(k, c.variable)
    out = []
    for p in parts:
        missing = {}
        for k, v in templates.items():
            if k not in p.variables and all(p.sizes.get(d) in (None, n) for d, n in v.sizes.items()):
                dtype, fill = with_missing(v.dtype)
                missing[k] = xr.Variable(v.dims, dask.array.full(v.shape, fill, dtype=dtype, chunks=v.data.chunks), v.attrs)
        lacking = {}
        for k, v in axes.items():
            if k not in p.variables and all(d in p.sizes for d in v.dims):
                dtype, fill = with_missing(v.dtype)
                lacking[k] = xr.Variable(v.dims, np.full([p.sizes[d] for d in v.dims], fill, dtype=dtype), v.attrs)
        p = p.assign(missing) if missing else p
        out.append(p.assign_coords(lacking) if lacking else p)
    return out


def _concat_alike(datasets: Sequence[xr.Dataset], labels: xr.DataArray) -> xr.Dataset | None:
    """Runs stacked by event number with NumPy alone, when they are alike; else None.

    Alike: the same variables with the same dims, dtypes and sizes, all in
    NumPy, indexed by ``time`` only. Stacking many short scalar runs is the
    common case, and xarray's general path (a renamed copy of every run,
    alignment, a copy per variable per run) costs more there than reading
    the runs. The result is the one that path gives with this module's
    options: ``time`` becomes ``event`` (0, 1, 2, ...), data variables are
    stacked, coordinates stacked only where runs differ, and attributes kept
    where every run shares them.
    """
    first = datasets[0]
    dim = str(labels.dims[0])
    if "time" not in first.dims or {dim, "event"} & (set(first.dims) | set(first.variables)):
        return None
    names = list(first.variables)
    for ds in datasets:
        if list(ds.variables) != names or dict(ds.sizes) != dict(first.sizes) or set(ds.xindexes) != {"time"}:
            return None
        if set(ds.coords) != set(first.coords):
            return None
        for name in names:
            v, v0 = ds.variables[name], first.variables[name]
            if v.dims != v0.dims or v.dtype != v0.dtype or type(v.data) is not np.ndarray:
                return None
    coords: dict[Any, Any] = {dim: labels.variable, "event": ("event", np.arange(first.sizes["time"]))}
    data_vars: dict[Any, xr.Variable] = {}
    for name in names:
        vs = [ds.variables[name] for ds in datasets]
        dims = tuple("event" if d == "time" else d for d in vs[0].dims)
        attrs = shared_attrs([v.attrs for v in vs])
        is_coord = name in first.coords
        if is_coord and all(v.equals(vs[0]) for v in vs[1:]):
            coords[name] = xr.Variable(dims, vs[0].data, attrs)
        elif is_coord:
            coords[name] = xr.Variable((dim, *dims), np.stack([v.data for v in vs]), attrs)
        else:
            data_vars[name] = xr.Variable((dim, *dims), np.stack([v.data for v in vs]), attrs)
    return xr.Dataset(data_vars, coords=coords, attrs=shared_attrs([ds.attrs for ds in datasets]))


def _concat_general(
    datasets: Sequence[xr.Dataset], labels: xr.DataArray, names: list[str], tolerance: float | None
) -> xr.Dataset:
    """Runs stacked through ``xr.concat``: aligned on ``names``, or by event number, padded to the longest."""
    parts = []
    if names:
        grids = {name: _grid(datasets, name, tolerance) for name in names}
        parts = [_aligned(ds, names, grids, tolerance) for ds in datasets]
        targets = {name: pd.Index(grid, name=name) for name, grid in grids.items()}
    else:
        for ds in datasets:
            n = ds.sizes.get("time", 0)
            part = ds.drop_indexes("time", errors="ignore").rename_dims(time="event") if "time" in ds.dims else ds
            parts.append(part.assign_coords(event=np.arange(n)))
        targets = {"event": pd.RangeIndex(max(p.sizes["event"] for p in parts), name="event")}
    parts = _fill_missing([_pad_to(p, {d: t for d, t in targets.items() if d in p.dims}) for p in parts])
    return xr.concat(
        parts,
        dim=labels,
        join="outer",
        data_vars="all",
        coords="different",
        compat="equals",
        combine_attrs=shared_attrs,
    )


def stack_runs(
    datasets: Sequence[xr.Dataset],
    dim: str = "run",
    by: str | None = None,
    *,
    align: str | Sequence[str] | None = None,
    tolerance: float | None = None,
) -> xr.Dataset:
    """Combine run Datasets along a new dimension, aligning their fields.

    Without ``align``, each run's ``time`` dimension becomes ``event`` (0, 1,
    2, ... within the run; ``time`` and ``seq_num`` stay as coordinates), so
    runs line up by event number. With ``align``, events line up on the
    values of event coordinates instead: ``align="energy_position"`` puts
    the frames taken at the same energy side by side, whatever their order or
    number in each run; ``time`` and ``seq_num`` follow as coordinates.

    Where a run has no event (a shorter run, or an energy it did not visit)
    its values are NaN (NaT for times, None for strings); that padding turns
    int fields and int frames into float64. Without padding (runs of equal
    length, or the same grid) int frames stay int. A field missing from a run
    is NaN there. Dask-backed frames stay lazy.

    Parameters
    ----------
    datasets : sequence of Dataset
        Runs as given by :func:`~intake_resonance.datasets.open.open_run_dataset`.
    dim : str
        Name of the new dimension (default ``"run"``).
    by : str, optional
        Label each run by this Dataset attribute or by a variable that holds
        one value through the run (e.g. ``"polarization_position"``); the
        default labels runs by uid. With ``by`` the uids stay as a ``uid``
        coordinate along ``dim``.
    align : str or sequence of str, optional
        Per-event fields to align on; each becomes a dimension (sorted
        values, the union over the runs). A value must not repeat within a
        run: align on several fields then (e.g. energy and polarization).
    tolerance : float, optional
        With ``align``: values closer than this to the smallest of a group are
        one grid point (the group's mean). Default: exact match.

    Returns
    -------
    xarray.Dataset
        Attributes (of the Dataset and of each variable) that every run has,
        with the same value, are kept; the others are dropped.

    Raises
    ------
    LayoutError
        (a ``ValueError``) a run lacks the ``by`` or ``align`` field, a
        ``by`` variable is not constant, or an ``align`` value repeats
        within a run.
    """
    if not datasets:
        raise LayoutError("stack_runs needs at least one Dataset")
    if tolerance is not None and align is None:
        raise LayoutError("tolerance= applies only with align=")
    labels = [run_label(ds, by) for ds in datasets]
    names = [align] if isinstance(align, str) else list(align or [])
    label_var = xr.DataArray(np.asarray(labels), dims=dim, name=dim)  # plain NumPy labels stay netCDF-safe
    out = None if names else _concat_alike(datasets, label_var)
    if out is None:
        out = _concat_general(datasets, label_var, names, tolerance)
    if by is not None:
        out = out.assign_coords(uid=(dim, [ds.attrs.get("uid", "") for ds in datasets]))
    for var in out.variables.values():  # a padded int field is float now: its stored dtype no longer describes it
        if "dtype" in var.attrs and var.attrs["dtype"] != "number" and str(var.attrs["dtype"]) != str(var.dtype):
            del var.attrs["dtype"]
        var.encoding = _encoding_for(var.encoding, var.dtype)
        var.encoding.pop("preferred_chunks", None)  # of one run's time axis, not of the stack's dims
        if isinstance(var.data, dask.array.Array):
            var.data = _regular_chunks(var.data)
    out.attrs["skipped_runs"] = []  # every stack says which runs it left out (stack_many's errors="skip")
    lead = [d for d in (dim, *names, "event") if d in out.dims]
    return out.transpose(*lead, ...)


def _regular_chunks(data: dask.array.Array) -> dask.array.Array:
    """``data`` with chunks Zarr can store: along each axis all equal but a smaller last one.

    Padding and concatenation leave chunks such as (3, 3, 3, 3, 4), which
    ``to_zarr`` refuses; such an axis is rechunked to its largest chunk.
    """
    wanted = {}
    for axis, sizes in enumerate(data.chunks):
        if len(sizes) > 1 and (len(set(sizes[:-1])) > 1 or sizes[-1] > sizes[0]):
            wanted[axis] = max(sizes)
    return data.rechunk(wanted) if wanted else data
