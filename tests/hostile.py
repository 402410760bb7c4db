"""Helpers for the hostile-file tests: every face, the CLI, and proof that nothing changed.

A hostile case is opened through the beamline facade, intake, the xarray
engine and the CLI; each must raise (or exit with) one of our errors, and
the beamtime's bytes must be the same afterwards, with nothing created.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import intake
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from conftest import T0, Written, write_nexafs, write_rsoxs

from intake_resonance import Catalog
from intake_resonance.beamtime.errors import BeamtimeError
from intake_resonance.tools.cli import cli
from intake_resonance.tools.writer import BeamtimeWriter


def small_beamtime(tmp_path: Path) -> Written:
    """A NEXAFS run and an RSoXS run, alone in a folder of their own (``tmp_path/bt``)."""
    out = Written(tmp_path / "bt" / "beamtime.db")
    out.path.parent.mkdir()
    with BeamtimeWriter(out.path, seed=3) as w:
        out.uids["nexafs"], out.events["nexafs"] = write_nexafs(w, T0)
        out.uids["rsoxs"], out.events["rsoxs"], out.frames["rsoxs"] = write_rsoxs(w, T0 + 100)
    return out


def image_array(bt: Written) -> Path:
    """The RSoXS run's frame array folder in the store."""
    return bt.path.with_suffix(".zarr") / "runs" / bt.uids["rsoxs"] / "detector_image"


def read_facade(path: Path, uid: str) -> Any:
    """Everything the beamline's reader offers for one run: table and every frame."""
    with Catalog(path) as cat:
        run = cat[uid]
        run.table()
        images = run.images()
        return np.stack([images[i] for i in range(len(images))]) if len(images) else None


def read_intake(path: Path, uid: str) -> Any:
    cat = intake.open_resonance_beamtime(str(path))
    try:
        ds = cat[uid].to_dask()
        try:
            return ds.load()
        finally:
            ds.close()
    finally:
        cat.close()


def read_engine(path: Path, uid: str) -> Any:
    with xr.open_dataset(path, engine="resonance", group=uid) as ds:
        return ds.load()


FACES: dict[str, Callable[[Path, str], Any]] = {"facade": read_facade, "intake": read_intake, "engine": read_engine}


def raises(face: str, path: Path, uid: str, cls: type[BeamtimeError], *words: object) -> BeamtimeError:
    """Run a face that must fail with ``cls``; check the words of its message."""
    with pytest.raises(BeamtimeError) as info:
        FACES[face](path, uid)
    err = info.value
    assert isinstance(err, cls), f"{face}: {type(err).__name__}: {err}"
    has_words(str(err), *words)
    return err


def has_words(text: str, *words: object) -> None:
    missing = [w for w in words if str(w) not in text]
    assert not missing, f"{missing} not in {text!r}"


def run_cli(*args: object) -> Any:
    try:  # click < 8.2 mixes stderr into stdout unless told not to
        runner = CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        runner = CliRunner()
    return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)


def cli_refuses(*args: object, words: tuple[object, ...] = ()) -> str:
    """A CLI call that must exit 2 with one line on stderr and no traceback; returns the line."""
    result = run_cli(*args)
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    has_words(lines[0], *words)
    return lines[0]


def tree_digest(*roots: Path) -> str:
    """One hash of every file and link under ``roots`` (names, link targets, bytes), links not followed."""
    h = hashlib.sha256()
    for root in roots:
        paths = [root] if not root.is_dir() or root.is_symlink() else sorted(root.rglob("*"))
        for p in paths:
            h.update(str(p).encode() + b"\0")
            if p.is_symlink():
                h.update(b"L" + os.readlink(p).encode())
            elif p.is_file():
                h.update(b"F" + p.read_bytes())
            elif p.is_dir():
                h.update(b"D")
    return h.hexdigest()


def beamtime_digest(db: Path, *more: Path) -> str:
    """The digest of a beamtime's folder (the .db, its store, anything beside them) and ``more``."""
    return tree_digest(db.parent, *more)


_watched: list[str] = []
_opened: list[str] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _watched and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.fsdecode(args[0])
        real = os.path.realpath(path)
        if any(real == w or real.startswith(w + os.sep) for w in _watched):
            _opened.append(path)


sys.addaudithook(_audit)  # audit hooks stay for the process; it only records while watching


@contextmanager
def nothing_opened_under(*folders: Path) -> Iterator[list[str]]:
    """Record every file Python opens under ``folders`` (resolved); the test asserts the list stays empty."""
    _watched[:] = [os.path.realpath(f) for f in folders]
    _opened.clear()
    try:
        yield _opened
    finally:
        _watched.clear()
