"""Runs in PyHyperScattering's layout: frames ``(system, pix_y, pix_x)`` with geometry attrs.

PyHyperScattering's integrators (``PFGeneralIntegrator``,
``PFEnergySeriesIntegrator``) take a DataArray whose frame dims are ``pix_x``
and ``pix_y``, whose one other dim indexes the frames (``system``, a
MultiIndex of energy, polarization, ...; or real dims), and whose attrs hold
pyFAI's geometry: ``dist``, ``poni1``, ``poni2``, ``pixel1``, ``pixel2`` in
metres and ``rot1``..``rot3`` in radians. :func:`to_pyhyper` builds that from
our run Datasets without reading a frame.

Orientation: our image variables are ``(time, <field>_x, <field>_y)`` where
``<field>_x`` is the frame's first (row) axis. Rows are pyFAI's slow axis
(``poni1``/``pixel1``) and PyHyperScattering's ``pix_y``; columns are
``pix_x`` (``poni2``/``pixel2``).

Importing this module registers ``Dataset.resonance.to_pyhyper()``; the
package itself does not import it (nor PyHyperScattering, which is needed
only to integrate).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..beamtime.errors import LayoutError
from ..datasets.attrs import where
from ..datasets.stacking import run_label, shared_attrs

__all__ = ["GEOMETRY_KEYS", "ResonanceAccessor", "detector_geometry", "to_pyhyper"]

#: Geometry keys read from ``geometry=`` or, failing that, the run metadata:
#: ``sdd`` (sample-detector distance, mm), ``pixel_size`` (mm; one number or
#: ``[rows, columns]``), ``beamcenter_x`` (pixels along ``pix_x``, the frame's
#: columns), ``beamcenter_y`` (pixels along ``pix_y``, the frame's rows).
#: Beam centres count from the outer edge of the first pixel, as Nika and
#: PyHyperScattering do (``poni = beamcenter * pixel size``). Optional:
#: ``rot1``, ``rot2``, ``rot3`` (pyFAI tilts, radians; default 0).
GEOMETRY_KEYS = ("sdd", "pixel_size", "beamcenter_x", "beamcenter_y")
_ROTATIONS = ("rot1", "rot2", "rot3")

# Our field names -> PyHyperScattering's coordinate names.
_ALIASES = {"energy_position": "energy", "polarization_position": "polarization"}
_DEFAULT_DIMS = ("energy", "polarization")
_FRAME_DIMS = ("pix_y", "pix_x")
# Per-field descriptor attrs that describe the stored integers, not the analysis array.
_STORAGE_ATTRS = ("dtype", "shape", "external")


def _error(ds: xr.Dataset, message: str, field: str | None = None) -> LayoutError:
    return LayoutError(message, **where(ds), field=field)


def _number(ds: xr.Dataset, key: str, value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise _error(ds, f"geometry {key!r} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise _error(ds, f"geometry {key!r} must be finite, got {value!r}")
    return out


def detector_geometry(ds: xr.Dataset, geometry: Mapping[str, Any] | None = None) -> dict[str, float]:
    """pyFAI geometry attrs for a run, from ``geometry`` or the run metadata.

    Parameters
    ----------
    ds : Dataset
        A run as given by :func:`~intake_resonance.datasets.open.open_run_dataset`;
        its attrs hold the run metadata.
    geometry : mapping, optional
        Any of :data:`GEOMETRY_KEYS` (and ``rot1``..``rot3``); a key given
        here wins over the run metadata.

    Returns
    -------
    dict
        ``dist``, ``poni1``, ``poni2``, ``pixel1``, ``pixel2`` (metres) and
        ``rot1``, ``rot2``, ``rot3`` (radians).

    Raises
    ------
    LayoutError
        A ``ValueError`` naming every missing key, or a value that is not a
        positive number where one is needed.
    """
    given = dict(geometry or {})
    unknown = sorted(set(given) - set(GEOMETRY_KEYS) - set(_ROTATIONS))
    if unknown:
        raise _error(ds, f"unknown geometry keys {unknown}; expected {list(GEOMETRY_KEYS) + list(_ROTATIONS)}")
    values = {k: given[k] if k in given else ds.attrs.get(k) for k in (*GEOMETRY_KEYS, *_ROTATIONS)}
    missing = [k for k in GEOMETRY_KEYS if values[k] is None]
    if missing:
        raise _error(
            ds,
            f"no detector geometry: missing {', '.join(missing)} (neither in geometry= nor in the run metadata); "
            "give geometry={'sdd': mm, 'pixel_size': mm, 'beamcenter_x': px, 'beamcenter_y': px}",
        )
    pixel: Any = values["pixel_size"]
    if isinstance(pixel, str) or not np.ndim(pixel):
        rows = cols = _number(ds, "pixel_size", pixel)
    else:
        pair = list(np.ravel(pixel))
        if len(pair) != 2:
            raise _error(ds, f"geometry 'pixel_size' must be one number or [rows, columns], got {pixel!r}")
        rows, cols = (_number(ds, "pixel_size", p) for p in pair)
    sdd = _number(ds, "sdd", values["sdd"])
    for key, v in (("sdd", sdd), ("pixel_size", rows), ("pixel_size", cols)):
        if v <= 0:
            raise _error(ds, f"geometry {key!r} must be positive, got {v!r}")
    bcx = _number(ds, "beamcenter_x", values["beamcenter_x"])
    bcy = _number(ds, "beamcenter_y", values["beamcenter_y"])
    out = {
        "dist": sdd / 1000.0,
        "poni1": bcy * rows / 1000.0,  # rows are pyFAI's dim1 (pix_y)
        "poni2": bcx * cols / 1000.0,
        "pixel1": rows / 1000.0,
        "pixel2": cols / 1000.0,
    }
    for key in _ROTATIONS:
        out[key] = 0.0 if values[key] is None else _number(ds, key, values[key])
    return out


def _frame_field(ds: xr.Dataset, field: str | None) -> str:
    images = [str(k) for k, v in ds.data_vars.items() if v.ndim == 3 and v.dims[0] == "time"]
    if field is None:
        if "detector_image" in images or not images:
            field = "detector_image"
        elif len(images) == 1:
            field = images[0]
        else:
            raise _error(ds, f"several image fields {images}; choose one with field=")
    if field not in ds.data_vars:
        raise _error(ds, f"no image field {field!r} in this run (image fields: {images or 'none'})", field=field)
    if ds[field].dims != ("time", f"{field}_x", f"{field}_y"):
        raise _error(ds, f"{field!r} has dims {ds[field].dims}, not (time, {field}_x, {field}_y)", field=field)
    return field


def _one_run(ds: xr.Dataset, field: str | None, geometry: Mapping[str, Any] | None) -> xr.DataArray:
    """One run's frames as (system, pix_y, pix_x), every per-event scalar a coordinate."""
    field = _frame_field(ds, field)
    var = ds[field]
    coords: dict[str, Any] = {}
    for name, v in ds.variables.items():
        if v.dims != ("time",) or name == "time":
            continue
        key = _ALIASES.get(str(name), str(name))
        if key in _FRAME_DIMS or key == "system":
            continue
        coords[key] = ("system", v.values, dict(v.attrs))
    coords["time"] = ("system", ds["time"].values, dict(ds["time"].attrs))
    coords["uid"] = ("system", np.full(ds.sizes["time"], str(ds.attrs.get("uid", ""))))
    frames = xr.Variable(("system", *_FRAME_DIMS), var.data)  # rows (<field>_x) are pix_y
    attrs = {k: v for k, v in ds.attrs.items() if k not in _STORAGE_ATTRS}
    attrs.update({k: v for k, v in var.attrs.items() if k not in _STORAGE_ATTRS})
    attrs.setdefault("units", "counts")  # detector frames count photons (ADU) unless the descriptor says otherwise
    attrs["field"] = field
    attrs.update(detector_geometry(ds, geometry))
    return xr.DataArray(frames, coords=coords, name=field, attrs=attrs)


def _levels(runs: Sequence[xr.DataArray], dims: Sequence[str] | None) -> list[str]:
    have = set.intersection(*({str(c) for c in r.coords} for r in runs))
    if dims is not None:
        wanted = [_ALIASES.get(d, d) for d in dims]
        missing = [d for d in wanted if d not in have]
        if missing:
            raise LayoutError(f"no coordinate {missing} in every run (have: {sorted(have)})")
        return wanted
    present = [d for d in _DEFAULT_DIMS if d in have]
    if not present:
        raise LayoutError(f"no energy or polarization in the runs; choose coordinates with dims= (have: {sorted(have)})")
    varying = [d for d in present if any(np.unique(np.asarray(r[d].values)).size > 1 for r in runs)]
    return varying or present


def _plain(key: Any) -> str:
    values = key if isinstance(key, tuple) else (key,)
    return str(tuple(v.item() if hasattr(v, "item") else v for v in values))


def _check_unique(index: pd.MultiIndex, levels: list[str]) -> None:
    dup = index[index.duplicated()]
    if len(dup):
        raise LayoutError(
            f"{len(dup)} frames repeat a ({', '.join(levels)}) of another, e.g. {_plain(dup[0])}; "
            "add a coordinate to dims= (e.g. 'seq_num') or label runs with by="
        )


def to_pyhyper(
    data: xr.Dataset | Sequence[xr.Dataset],
    *,
    field: str | None = None,
    dims: Sequence[str] | None = None,
    stacked: bool = True,
    geometry: Mapping[str, Any] | None = None,
    by: str | None = None,
) -> xr.DataArray:
    """Frames of one or several runs in PyHyperScattering's layout, still lazy.

    Parameters
    ----------
    data : Dataset or sequence of Dataset
        Runs as given by :func:`~intake_resonance.datasets.open.open_run_dataset`
        (or ``RunSource.to_dask()``).
    field : str, optional
        Image field (default ``detector_image``, or the run's only image field).
    dims : sequence of str, optional
        Coordinates that index the frames. ``energy`` stands for
        ``energy_position`` and ``polarization`` for
        ``polarization_position``; any other per-event field or ``seq_num``
        may be named. Default: those of energy and polarization that vary
        (both if neither does).
    stacked : bool
        True (default): one dim ``system``, a MultiIndex of ``dims``, as
        PyHyperScattering's loaders make (its legacy, in-memory integration).
        False: each of ``dims`` a real dim, as ``.rsoxs`` (polarization
        selection) and the integrators' lazy ``method="dask"`` (one such dim
        only) need; a grid point no frame has is NaN (frames become float).
    geometry : mapping, optional
        ``sdd`` (mm), ``pixel_size`` (mm, one number or ``[rows, columns]``),
        ``beamcenter_x`` / ``beamcenter_y`` (pixels along ``pix_x`` /
        ``pix_y``), optional ``rot1``..``rot3`` (radians); see
        :data:`GEOMETRY_KEYS`. Keys not given are read from the run metadata.
    by : str, optional
        For several runs: a run attribute (e.g. ``sample_name``) or a
        variable constant through each run, added as the first index level.

    Returns
    -------
    xarray.DataArray
        Frames ``(system, pix_y, pix_x)`` (or ``(*dims, pix_y, pix_x)``),
        dask-backed as the runs are. Every per-event scalar (``exposure``,
        ``i0``, ``seq_num``, ``time``, ...) and the run ``uid`` are
        coordinates along the frames. Attrs: the run attributes shared by all
        runs, the field's ``units``, and ``dist``, ``poni1``, ``poni2``,
        ``pixel1``, ``pixel2`` (m), ``rot1``..``rot3`` (rad).

    Raises
    ------
    LayoutError
        (a ``ValueError``) geometry missing, a coordinate missing from a run,
        frames that repeat an index entry, or frames of different shapes.
    """
    sets = [data] if isinstance(data, xr.Dataset) else list(data)
    if not sets:
        raise LayoutError("to_pyhyper needs at least one run")
    runs = [_one_run(ds, field, geometry) for ds in sets]
    shapes = {r.shape[1:] for r in runs}
    if len(shapes) > 1:
        raise LayoutError(f"frames of different shapes {sorted(shapes)} cannot share one index")
    geometries = {tuple(r.attrs[k] for k in ("dist", "poni1", "poni2", "pixel1", "pixel2", *_ROTATIONS)) for r in runs}
    if len(geometries) > 1:
        raise LayoutError("the runs have different detector geometries; integrate them separately or pass geometry=")
    levels = _levels(runs, dims)
    if by is not None:
        labels = [run_label(ds, by) for ds in sets]
        runs = [r.assign_coords({by: ("system", np.full(r.sizes["system"], lab))}) for r, lab in zip(runs, labels)]
        levels = [by, *[lv for lv in levels if lv != by]]
    if len(runs) == 1:
        out = runs[0]
    else:
        common = set.intersection(*(set(r.coords) for r in runs))
        runs = [r.drop_vars([c for c in r.coords if c not in common]) for r in runs]
        out = xr.concat(runs, dim="system", coords="all", compat="override", join="exact", combine_attrs=shared_attrs)
    index = pd.MultiIndex.from_arrays([out[lv].values for lv in levels], names=levels)
    _check_unique(index, levels)
    if stacked:
        system = xr.Coordinates.from_pandas_multiindex(index, "system")
        for lv in levels:  # keep units and the like on the levels
            system.variables[lv].attrs.update(out[lv].attrs)
        return out.drop_vars(levels).assign_coords(system)
    if len(levels) == 1:
        out = out.swap_dims(system=levels[0])
    else:
        out = out.set_index(system=levels).unstack("system")
    return out.transpose(*levels, *_FRAME_DIMS)


@xr.register_dataset_accessor("resonance")
class ResonanceAccessor:
    """``ds.resonance``: analysis layouts of a run Dataset (registered by importing this module)."""

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    def to_pyhyper(self, **kwargs: Any) -> xr.DataArray:
        """This run in PyHyperScattering's layout; see :func:`to_pyhyper`."""
        return to_pyhyper(self._ds, **kwargs)
