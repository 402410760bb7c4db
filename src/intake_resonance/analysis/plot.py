"""Quick-look plots of one run: a NEXAFS curve or a detector frame, saved as PNG.

The command line's ``plot`` command is a thin wrapper around
:func:`save_run_plot`; :func:`plot_run` draws onto a new figure for
notebooks. Figures are made with :class:`matplotlib.figure.Figure` directly,
not through pyplot: no backend is chosen or changed (a notebook's stays as it
is), nothing lingers in pyplot's figure registry, and saving needs no display.

What is drawn
-------------
- A run without image fields (NEXAFS): its scalar columns against
  ``energy_position``. When both ``photodiode`` and ``i0`` exist, the main
  curve is ``photodiode / i0`` (a ratio, labelled so: no edge normalisation); otherwise every
  numeric column is drawn.
- A grid scan (two motors, here ``sam_x_position``/``sam_y_position``,
  visiting each point of a grid once): a 2-D map of ``photodiode / i0`` (or
  the first other numeric column) over the two motors.
- A run with frames: the mean frame over the stream (or one frame), with a
  colour bar, on a linear or logarithmic scale. The frame's first axis
  (``<field>_x``, the rows) is drawn vertically, from the top, its second
  (``<field>_y``) horizontally, and both axes say so. The title gives the
  energy (or the range a mean covers, saying that it mixes energies) and the
  polarization.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..beamtime.errors import BeamtimeError
from ..datasets.attrs import where

__all__ = ["IMAGE_SUFFIXES", "NothingToPlotError", "grid_axes", "image_fields", "scalar_fields", "plot_run", "save_run_plot"]

#: File suffixes :func:`save_run_plot` writes (matplotlib picks the format from the suffix).
IMAGE_SUFFIXES = (".png", ".pdf", ".svg")
#: The x axis of a spectrum; other runs fall back to ``seq_num``.
ENERGY = "energy_position"
#: The polarization named in frame titles.
POLARIZATION = "polarization_position"
#: Motor pairs a grid scan may map over, (horizontal, vertical), tried in order.
GRID_MOTORS = (("sam_x_position", "sam_y_position"),)


class NothingToPlotError(BeamtimeError):
    """The run (stream) holds nothing that can be drawn, or the frame asked for does not exist."""


def image_fields(ds: xr.Dataset) -> list[str]:
    """Names of the image variables of a run Dataset (dims ``(time, <f>_x, <f>_y)``)."""
    return [str(k) for k, v in ds.data_vars.items() if v.ndim == 3 and v.dims[0] == "time"]


def scalar_fields(ds: xr.Dataset) -> list[str]:
    """Names of the numeric one-value-per-event variables of a run Dataset: readings, then motors (coordinates)."""
    names = [*ds.data_vars, *(k for k in ds.coords if k not in ("time", "seq_num"))]
    return [str(k) for k in names if ds[k].dims == ("time",) and ds[k].dtype.kind in "iuf"]


def _title(ds: xr.Dataset, extra: str = "") -> str:
    attrs = ds.attrs
    parts = [str(attrs.get("uid", "?"))[:8], str(attrs.get("plan_name", "?")), str(attrs.get("sample_name", "no sample"))]
    if attrs.get("stream", "primary") != "primary":
        parts.append(f"[{attrs['stream']}]")
    status = attrs.get("exit_status")
    if "uid" in attrs and status is None:
        parts.append("(open: still being written)")
    elif status is not None and status != "success":
        parts.append(f"({status})")
    return "  ".join(parts) + (f"\n{extra}" if extra else "")


def _label(ds: xr.Dataset, name: str) -> str:
    units = ds[name].attrs.get("units")
    return f"{name} [{units}]" if units else name


def _x_axis(ds: xr.Dataset) -> tuple[np.ndarray, str]:
    # A grid scan sits at one energy: then event order is the only useful x.
    if ENERGY in ds and np.unique(ds[ENERGY].values[~np.isnan(ds[ENERGY].values)]).size > 1:
        return np.asarray(ds[ENERGY].values, dtype=float), _label(ds, ENERGY)
    return np.asarray(ds["seq_num"].values), "seq_num"


def _plot_scalars(ax: Any, ds: xr.Dataset) -> None:
    columns = [c for c in scalar_fields(ds) if c != ENERGY]
    if not columns or ds.sizes.get("time", 0) == 0:
        raise NothingToPlotError("the stream has no numeric columns to plot", **where(ds))
    x, xlabel = _x_axis(ds)
    order = np.argsort(x, kind="stable")  # a spectrum read back and forth still draws as one line
    style = "-o" if x.size <= 40 else "-"  # few points: show where the readings are
    if "photodiode" in columns and "i0" in columns:
        y = np.asarray(ds["photodiode"].values, float) / np.asarray(ds["i0"].values, float)
        ax.plot(x[order], y[order], style, lw=1.5, ms=3, label="photodiode / i0")
        ax.set_ylabel("photodiode / i0 (a ratio, not edge-normalised)")
        ax.legend(loc="best", fontsize="small")
    else:
        # One axis per unit: a beam current in mA never shares a scale with positions in mm.
        groups: dict[str, list[str]] = {}
        for name in columns:
            groups.setdefault(str(ds[name].attrs.get("units", "")), []).append(name)
        handles: list[Any] = []
        for k, (units, names) in enumerate(groups.items()):
            axis = ax if k == 0 else ax.twinx()
            if k > 1:
                axis.spines["right"].set_position(("axes", 1 + 0.15 * (k - 1)))
            for name in names:
                color = f"C{len(handles)}"
                (line,) = axis.plot(x[order], np.asarray(ds[name].values, float)[order], style, lw=1.2, ms=3,
                                    color=color, label=_label(ds, name))
                handles.append(line)
            axis.set_ylabel(f"{', '.join(names)}" + (f" [{units}]" if units else ""))
        ax.legend(handles=handles, loc="best", fontsize="small")
    ax.set_xlabel(xlabel)
    ax.grid(True, alpha=0.3)


def _values_text(ds: xr.Dataset, name: str, label: str, at: slice | int) -> tuple[str, bool]:
    """``"energy 285.3 eV"`` or ``"energy 270-320 eV"`` for the events ``at``; and whether it varies."""
    if name not in ds or ds[name].dtype.kind not in "iuf":
        return "", False
    values = np.atleast_1d(np.asarray(ds[name].values[at], dtype=float))
    values = values[np.isfinite(values)]
    if values.size == 0:
        return "", False
    units = ds[name].attrs.get("units", "")
    lo, hi = float(values.min()), float(values.max())
    span = f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"
    return f"{label} {span} {units}".rstrip(), lo != hi


def _frame_note(ds: xr.Dataset, field: str, frame: int | None) -> str:
    """What the frame shows: which frame or mean, at which energy and polarization."""
    n = ds.sizes["time"]
    at: slice | int = slice(None) if frame is None else frame
    energy, mixed_e = _values_text(ds, ENERGY, "energy", at)
    pol, mixed_p = _values_text(ds, POLARIZATION, "polarization", at)
    head = f"{field}: mean of {n} frames" if frame is None else f"{field}: frame {frame % n}"
    parts = [p for p in (energy, pol) if p]
    note = head + (f" at {', '.join(parts)}" if parts else "")
    mixed = [w for w, m in (("energies", mixed_e), ("polarizations", mixed_p)) if m]
    if mixed:
        note += f"\n(mixes {' and '.join(mixed)})"
    return note


def _frame_image(ds: xr.Dataset, field: str, frame: int | None) -> tuple[np.ndarray, str]:
    var = ds[field]
    n = var.sizes["time"]
    if n == 0:
        raise NothingToPlotError("the stream has no frames to plot", field=field, **where(ds))
    if frame is None:
        # Dask computes the mean chunk by chunk; nanmean skips events without a frame.
        image = np.asarray(var.astype("float64").mean("time", skipna=True).values)
    else:
        if not -n <= frame < n:
            raise NothingToPlotError(f"frame {frame} out of range for {n} frames", field=field, **where(ds))
        image = np.asarray(var.isel(time=frame).values, dtype=float)
    if not np.isfinite(image).any():
        raise NothingToPlotError("the frame is missing (every pixel NaN)", field=field, **where(ds))
    return image, _frame_note(ds, field, frame)


def grid_axes(ds: xr.Dataset) -> tuple[str, str] | None:
    """The two motors a run scans as a grid (horizontal, vertical), or None.

    A grid: both motors vary and each pair of their values occurs exactly
    once, so the events fill a (vertical x horizontal) table.
    """
    n = ds.sizes.get("time", 0)
    for xname, yname in GRID_MOTORS:
        if xname not in ds or yname not in ds or n < 4:
            continue
        x, y = np.asarray(ds[xname].values, float), np.asarray(ds[yname].values, float)
        ux, uy = np.unique(x), np.unique(y)
        if ux.size > 1 and uy.size > 1 and ux.size * uy.size == n and len(set(zip(x, y))) == n:
            return xname, yname
    return None


def _grid_values(ds: xr.Dataset) -> tuple[np.ndarray, str]:
    columns = [c for c in scalar_fields(ds) if not c.endswith("_position")]
    if "photodiode" in columns and "i0" in columns:
        return np.asarray(ds["photodiode"].values, float) / np.asarray(ds["i0"].values, float), "photodiode / i0"
    if not columns:
        raise NothingToPlotError("the grid scan has no reading to map", **where(ds))
    return np.asarray(ds[columns[0]].values, float), _label(ds, columns[0])


def _plot_grid(fig: Any, ax: Any, ds: xr.Dataset, xname: str, yname: str) -> None:
    x, y = np.asarray(ds[xname].values, float), np.asarray(ds[yname].values, float)
    ux, uy = np.unique(x), np.unique(y)
    values, label = _grid_values(ds)
    grid = np.full((uy.size, ux.size), np.nan)
    grid[np.searchsorted(uy, y), np.searchsorted(ux, x)] = values  # row: vertical motor, column: horizontal
    half_x = (ux[1] - ux[0]) / 2 if ux.size > 1 else 0.5
    half_y = (uy[1] - uy[0]) / 2 if uy.size > 1 else 0.5
    im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis", interpolation="nearest",
                   extent=(ux[0] - half_x, ux[-1] + half_x, uy[0] - half_y, uy[-1] + half_y))
    ax.set_xlabel(_label(ds, xname))
    ax.set_ylabel(_label(ds, yname))
    fig.colorbar(im, ax=ax, label=label)


def _plot_frame(fig: Any, ax: Any, image: np.ndarray, field: str, log: bool) -> None:
    from matplotlib.colors import LogNorm, Normalize

    finite = image[np.isfinite(image)]
    if log:
        positive = finite[finite > 0]
        vmin = float(positive.min()) if positive.size else 1.0
        vmax = float(finite.max())
        norm: Any = LogNorm(vmin=vmin, vmax=vmax if vmax > vmin else vmin * 10)  # a flat image still gets a scale
        image = np.where(image > 0, image, np.nan)  # log of zero or less has no colour
    else:
        norm = Normalize(vmin=float(finite.min()), vmax=float(finite.max()))
    # Rows of the array (the frame's first axis, <field>_x) run down the page, as a detector
    # image is read; columns (<field>_y) run across.
    im = ax.imshow(image, origin="upper", cmap="viridis", norm=norm, interpolation="nearest")
    ax.set_xlabel(f"{field}_y (frame columns) [pixel]")
    ax.set_ylabel(f"{field}_x (frame rows) [pixel]")
    fig.colorbar(im, ax=ax, label="counts" + (" (log)" if log else ""))


def plot_run(
    ds: xr.Dataset, *, field: str | None = None, frame: int | None = None, log: bool = False
) -> Any:
    """Draw one run Dataset onto a new matplotlib figure.

    A run with frames shows a frame (or the mean) with its rows
    (``<field>_x``) vertical; a grid scan a map over its two motors; other
    runs their readings against energy (see the module docstring).

    Parameters
    ----------
    ds : xarray.Dataset
        A run as given by :func:`~intake_resonance.datasets.open.open_run_dataset`.
    field : str, optional
        Image field to show (default: the first one); ignored for runs
        without frames.
    frame : int, optional
        Show this frame (negative counts from the end) instead of the mean.
    log : bool
        Logarithmic colour scale for frames.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    NothingToPlotError
        No numeric column or frame to draw, an unknown field, or a frame
        out of range.
    """
    from matplotlib.figure import Figure

    images = image_fields(ds)
    if field is not None and field not in images:
        raise NothingToPlotError(
            f"no image field {field!r} (image fields: {', '.join(images) or 'none'})", **where(ds)
        )
    fig = Figure(figsize=(7.0, 5.5) if images else (7.5, 4.5), layout="constrained")
    ax = fig.subplots()
    if images:
        name = field or images[0]
        image, note = _frame_image(ds, name, frame)
        _plot_frame(fig, ax, image, name, log)
        ax.set_title(_title(ds, note), fontsize="medium")
    elif (motors := grid_axes(ds)) is not None:
        _plot_grid(fig, ax, ds, *motors)
        energy, _ = _values_text(ds, ENERGY, "energy", slice(None))
        ax.set_title(_title(ds, f"map over {motors[0]} and {motors[1]}" + (f" at {energy}" if energy else "")),
                     fontsize="medium")
    else:
        _plot_scalars(ax, ds)
        ax.set_title(_title(ds), fontsize="medium")
    return fig


def save_run_plot(
    ds: xr.Dataset,
    out: str | Path,
    *,
    field: str | None = None,
    frame: int | None = None,
    log: bool = False,
    dpi: int = 110,
) -> Path:
    """Draw a run (see :func:`plot_run`) and save it as an image file.

    Parameters
    ----------
    ds : xarray.Dataset
        The run.
    out : str or Path
        Output file; the format follows its suffix (``.png`` usually).
    field, frame, log
        As for :func:`plot_run`.
    dpi : int
        Resolution of the saved image.

    Returns
    -------
    Path
        ``out``.
    """
    fig = plot_run(ds, field=field, frame=frame, log=log)
    fig.savefig(out, dpi=dpi)
    return Path(out)
