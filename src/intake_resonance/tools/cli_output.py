"""Where the command line writes: output paths that never touch a beamtime, and export files.

``export`` and ``plot`` write only where no beamtime lives: every output path
is resolved (links too) and refused when it is, or is inside, a ``.zarr``
store, is or holds the beamtime's ``.db`` or store, or is another beamtime's
store. An export is written beside its target first (a hidden
``.NAME.PID.partial``), flushed to disk (``fsync`` of every file and folder
it made), and only then renamed into place (:func:`commit`), so a failure, a
full disk or a killed process never leaves half a file under the target's
name, and an existing target replaced with ``--force`` stays whole until the
new one is complete. Columns of
mixed kinds are written as text, since netCDF and Zarr hold one type per
variable.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

__all__ = [
    "EXIT_BAD_INPUT",
    "BadInput",
    "commit",
    "fsync_tree",
    "partial_path",
    "quiet_hdf5_handles",
    "release_failed_netcdf",
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
    """An OSError's reason, one line, without repeating the path (HDF5's long report: its system error)."""
    text = " ".join(str(exc).split())
    hdf5 = re.search(r"error message = '([^']+)'", text)
    if hdf5:
        return hdf5.group(1)
    return " ".join(str(exc.strerror or "").split()) or text or type(exc).__name__


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


def partial_path(out: Path) -> Path:
    """Where an export to ``out`` is written before :func:`commit` (beside it, hidden, this process's own)."""
    return out.with_name(f".{out.name}.{os.getpid()}.partial")


def _fsync(path: Path, directory: bool) -> None:
    fd = os.open(path, (os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) if directory else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """Flush a written file, or every file and folder of a written tree, to the disk.

    A full disk often shows only here (the file system reserved nothing
    while writing): the ``OSError`` is raised, and the export fails.
    """
    if not path.is_dir():
        _fsync(path, directory=False)
        return
    for root, _dirs, files in os.walk(path):
        for name in files:
            _fsync(Path(root, name), directory=False)
        _fsync(Path(root), directory=True)


def commit(partial: Path, out: Path) -> None:
    """Put the complete, flushed ``partial`` in place of ``out``; ``out`` is whole before and after.

    A file replaces a file in one ``rename``. A folder (a Zarr store) cannot
    replace a folder in one step: the old one is renamed aside first, put
    back if the second rename fails, and deleted only after. The folder
    holding ``out`` is flushed last, so the new name survives a crash.
    """
    fsync_tree(partial)
    aside = None
    if (out.is_dir() and not out.is_symlink()) or partial.is_dir():
        if out.exists() or out.is_symlink():
            aside = out.with_name(f".{out.name}.{os.getpid()}.old")
            remove(aside)
            out.rename(aside)
        try:
            partial.rename(out)
        except OSError:
            if aside is not None:
                aside.rename(out)
            raise
    else:
        os.replace(partial, out)
    _fsync(out.parent, directory=True)
    if aside is not None:
        remove(aside, quiet=True)


@contextmanager
def quiet_hdf5_handles() -> Iterator[None]:
    """Keep h5py's complaints about handles it cannot close (a failed write) off stderr.

    h5py (Cython) reports them from its handles' deallocation, through
    ``sys.excepthook`` (the traceback) and ``sys.unraisablehook`` (``Exception
    ignored in ...``); the export fails with its own one line instead.
    Everything not from h5py is reported as usual.
    """
    import traceback

    unraisable_hook, excepthook = sys.unraisablehook, sys.excepthook

    def quiet_unraisable(unraisable: Any) -> None:
        if "h5py" not in f"{unraisable.err_msg} {unraisable.object!r}":
            unraisable_hook(unraisable)

    def quiet_except(kind: Any, value: Any, tb: Any) -> None:
        if not any("h5py" in frame.filename for frame in traceback.extract_tb(tb)):
            excepthook(kind, value, tb)

    sys.unraisablehook, sys.excepthook = quiet_unraisable, quiet_except
    try:
        yield
    finally:
        sys.unraisablehook, sys.excepthook = unraisable_hook, excepthook


def release_failed_netcdf(partial: Path, exc: BaseException) -> None:
    """Let go of a netCDF file whose writing failed (a full disk), so nothing touches it again.

    When HDF5 cannot write (``ENOSPC``), h5netcdf's ``close`` fails half way
    and leaves the file marked open; its ``__del__`` then closes it again at
    garbage collection or at exit, and HDF5 crashes (a segmentation fault
    after our one-line message). The file is marked closed here, its HDF5
    handle closed without a flush, and the handles collected now (the
    failure's traceback, ``exc``, lets go of the frames holding them), their
    complaints kept off stderr (:func:`quiet_hdf5_handles`).
    """
    import gc
    import traceback

    h5netcdf = sys.modules.get("h5netcdf")
    if h5netcdf is None:
        return
    name = str(partial)
    for obj in gc.get_objects():
        if isinstance(obj, h5netcdf.File) and getattr(obj, "_filename", None) == name and not obj._closed:
            h5 = getattr(obj, "_File__h5file", None)
            obj._closed = True
            try:
                if h5 is not None:
                    h5.close()
            except Exception:  # noqa: BLE001 - the disk is full; the file is deleted next
                pass
    with quiet_hdf5_handles():
        seen: BaseException | None = exc
        while seen is not None:
            if seen.__traceback__ is not None:
                traceback.clear_frames(seen.__traceback__)
            seen = seen.__cause__ or seen.__context__
        gc.collect()


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


def printable(text: Any) -> str:
    """``text`` safe to print on a terminal: every character that is not printable written as its escape.

    Beamtime text reaches the terminal through ``ls``, ``show``, ``check`` and
    error messages: an ESC there could set the window title, write the
    clipboard (OSC 52), clear or hide text; a carriage return or newline in a
    sample name could forge a line. Control, format (bidirectional
    overrides, zero-width), separator and unassigned characters become
    ``\\x1b``, ``\\n``, ``\\u202e``, ... as Python writes them.
    """
    line = str(text)
    if line.isprintable():
        return line
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in line)
