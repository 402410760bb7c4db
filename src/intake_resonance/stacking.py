"""Stack several runs into one lazy Dataset along a new dimension."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["stack_runs"]


def _label(ds: xr.Dataset, by: str | None) -> Any:
    uid = ds.attrs.get("uid", "?")
    if by is None:
        return uid
    if by in ds.attrs:
        return ds.attrs[by]
    if by in ds.variables:
        values = np.unique(np.asarray(ds[by].values).ravel())
        values = values[~pd.isna(values)] if values.dtype.kind in "fcmM" else values
        if len(values) != 1:
            raise ValueError(
                f"run {uid}: {by!r} is not one value across the run (found {len(values)} distinct); "
                "stack by an attribute or a constant variable"
            )
        return values[0].item() if hasattr(values[0], "item") else values[0]
    raise ValueError(f"run {uid} has no attribute or variable {by!r} to stack by")


def stack_runs(datasets: Sequence[xr.Dataset], dim: str = "run", by: str | None = None) -> xr.Dataset:
    """Combine run Datasets along a new dimension, aligning their fields.

    Each run's ``time`` dimension becomes ``event`` (0, 1, 2, ... within
    the run; ``time`` and ``seq_num`` stay as coordinates), so runs of
    different lengths line up by event number and shorter runs are padded
    with NaN (NaT for times). A field missing from a run is NaN there.
    Dask-backed frames stay lazy.

    Parameters
    ----------
    datasets : sequence of Dataset
        Runs as given by :func:`~intake_resonance.dataset.open_run_dataset`.
    dim : str
        Name of the new dimension (default ``"run"``).
    by : str, optional
        Label each run by this Dataset attribute or by a variable that holds
        one value through the run (e.g. ``"polarization_position"``); the
        default labels runs by uid. With ``by`` the uids stay as a ``uid``
        coordinate along ``dim``.

    Returns
    -------
    xarray.Dataset
        Attributes shared by all runs are kept; the others are dropped.
    """
    if not datasets:
        raise ValueError("stack_runs needs at least one Dataset")
    labels = [_label(ds, by) for ds in datasets]
    parts = []
    for ds in datasets:
        n = ds.sizes.get("time", 0)
        part = ds.drop_indexes("time", errors="ignore").rename_dims(time="event") if "time" in ds.dims else ds
        parts.append(part.assign_coords(event=np.arange(n)))
    out = xr.concat(
        parts,
        dim=xr.DataArray(np.asarray(labels), dims=dim, name=dim),  # plain NumPy labels stay netCDF-safe
        join="outer",
        data_vars="all",
        coords="different",
        compat="equals",
        combine_attrs="drop_conflicts",
    )
    if by is not None:
        out = out.assign_coords(uid=(dim, [ds.attrs.get("uid", "") for ds in datasets]))
    return out
