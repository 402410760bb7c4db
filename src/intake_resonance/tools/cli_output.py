"""Where the command line writes: output paths that never touch a beamtime, and export files.

``export`` and ``plot`` write only where no beamtime lives: every output path
is resolved (links too) and refused when it is, or is inside, a ``.zarr``
store, is or holds the beamtime's ``.db`` or store, or is another beamtime's
store. An export is written beside its target first and renamed into place,
so a failure never leaves half a file under the target's name. Columns of
mixed kinds are written as text, since netCDF and Zarr hold one type per
variable.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

__all__ = [
    "EXIT_BAD_INPUT",
    "BadInput",
    "WRITERS",
    "check_output",
    "exportable",
    "first_line",
    "frame_count",
    "progress_option",
    "reason",
    "refuse_beamtime_output",
    "refuse_inside_store",
    "remove",
    "with_progress",
    "write",
]

#: Output suffix -> what ``write`` produces.
WRITERS = {".nc": "netcdf", ".zarr": "zarr"}

#: Exit status for bad input (files, uids, options), as click uses for usage errors.
EXIT_BAD_INPUT = 2


class BadInput(click.ClickException):
    """Bad input found while a command runs: one line on stderr, exit status 2."""

    exit_code = EXIT_BAD_INPUT


def progress_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--progress/--no-progress`` (``-q`` is ``--no-progress``), passed to the command as ``progress``.

    Unset, a progress bar is drawn only when stderr is a terminal: in a
    script or a CI log, a failed command is then exactly its one error line.
    """

    def decide(ctx: click.Context, param: click.Parameter, value: bool | None) -> bool:
        return sys.stderr.isatty() if value is None else value

    return click.option(
        "--progress/--no-progress",
        " /-q",
        default=None,
        callback=decide,
        help="Draw a progress bar on stderr (default: only when stderr is a terminal; -q: never).",
    )(command)


def with_progress(ds: Any, update: Callable[[int], Any]) -> Any:
    """The Dataset with each image variable's chunks reporting their frames as they are read."""
    import dask.array as da
    import numpy as np

    def tick(block: Any) -> Any:
        update(block.shape[0])
        return block

    out = ds.copy()
    for name, var in ds.data_vars.items():
        if var.ndim == 3 and isinstance(var.data, da.Array):
            out[name] = var.copy(data=da.map_blocks(tick, var.data, dtype=var.dtype, meta=np.empty((0,) * var.ndim, var.dtype)))
    return out


def check_output(out: Path, suffixes: Sequence[str]) -> None:
    """Refuse an output whose format or folder would only fail after the run was read."""
    if out.suffix.lower() not in suffixes:
        raise BadInput(f"{out}: unknown output format {out.suffix or '(no suffix)'!r}; use {' or '.join(suffixes)}")
    if not out.parent.is_dir():
        raise BadInput(f"{out}: folder {out.parent} does not exist")


def reason(exc: OSError) -> str:
    """An OSError's reason, one line, without repeating the path."""
    return exc.strerror or " ".join(str(exc).split()) or type(exc).__name__


def refuse_inside_store(out: Path) -> None:
    """Refuse an output that is, or lies inside, a ``.zarr`` store (links resolved)."""
    target = Path(os.path.realpath(out))
    inside = next((p for p in (target, *target.parents) if p.suffix.lower() == ".zarr" and p.is_dir()), None)
    if inside is not None:
        raise BadInput(f"{out}: refusing to write inside the Zarr store {inside}")


def refuse_beamtime_output(out: Path, path: Path) -> None:
    """Refuse an output that would write into, over or around a beamtime (links resolved).

    Refused: anything inside a ``.zarr`` store, the beamtime's ``.db`` or
    store, a folder holding either (``--force`` would delete it), and the
    store of any other beamtime (a ``.zarr`` folder beside a ``.db``).
    """
    from ..beamtime.format import zarr_path_for

    target = Path(os.path.realpath(out))
    db, store = Path(os.path.realpath(path)), Path(os.path.realpath(zarr_path_for(path)))
    inside = next((p for p in target.parents if p.suffix.lower() == ".zarr" and p.is_dir()), None)
    if inside is not None:
        raise BadInput(f"{out}: refusing to write inside the Zarr store {inside}")
    if target in (db, store) or db.is_relative_to(target) or store.is_relative_to(target):
        raise BadInput(f"{out}: refusing to write over the beamtime {path}")
    if target.suffix.lower() == ".zarr" and target.is_dir() and target.with_suffix(".db").is_file():
        raise BadInput(f"{out}: refusing to write over the Zarr store of beamtime {target.with_suffix('.db')}")


def frame_count(ds: Any) -> int:
    """Frames a run Dataset holds, over all its image variables."""
    return sum(var.shape[0] for var in ds.data_vars.values() if var.ndim == 3)


def _as_text(value: Any) -> Any:
    import orjson

    if value is None or (isinstance(value, float) and value != value):
        return None  # missing stays missing
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def exportable(ds: Any) -> Any:
    """The Dataset with each column of mixed kinds (``"n/a"`` among numbers, ragged lists) as text.

    netCDF and Zarr store one type per variable: strings are kept as they are,
    every other value becomes its JSON text, missing values stay missing, and
    the variable's ``mixed_types`` attribute says so.
    """
    import numpy as np

    out = ds
    for name, var in ds.variables.items():
        if var.dtype != object or not isinstance(var.data, np.ndarray):
            continue
        kinds = {type(v).__name__ for v in var.values.ravel() if _as_text(v) is not None}
        if kinds <= {"str"}:
            continue
        text = np.array([_as_text(v) for v in var.values.ravel()], dtype=object).reshape(var.shape)
        attrs = {**var.attrs, "mixed_types": f"values of several types ({', '.join(sorted(kinds))}), written as text"}
        out = out.assign({name: var.copy(data=text)}) if name in ds.data_vars else out.assign_coords({name: var.copy(data=text)})
        out[name].attrs = attrs
    return out


def write(ds: Any, target: Path, kind: str) -> None:
    """Write ``ds`` to ``target`` as ``kind`` (``"netcdf"`` or ``"zarr"``, see :data:`WRITERS`)."""
    if kind == "netcdf":
        ds.to_netcdf(target, engine="h5netcdf")
    else:
        import warnings

        with warnings.catch_warnings():
            # Consolidated metadata is what lets xarray open the store without a warning of its
            # own; zarr warns that format 3 has not standardised it yet, which users cannot act on.
            warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
            ds.to_zarr(target, mode="w-")


def remove(path: Path, quiet: bool = False) -> None:
    """Delete a file, a link or a folder tree if there is one; ``quiet``: ignore what cannot be deleted."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    except OSError:
        if not quiet:
            raise


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its class name when it has none)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
