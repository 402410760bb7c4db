"""The CLI against damaged beamtimes and hostile places: never a traceback, never a write where a beamtime lives.

Every command runs against beamtimes written by our writer and then damaged
with plain ``sqlite3`` and file operations. Each exits 0, 1 (``check``
finding errors) or 2 with one line on stderr, never with a traceback, and
leaves the beamtime as it was.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import T0, write_nexafs, write_rsoxs
from hostile import beamtime_digest, cli_refuses, has_words, run_cli

from intake_resonance.tools.demo import write_demo
from intake_resonance.tools.writer import BeamtimeWriter

NAME = "bt"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A beamtime folder: a NEXAFS run with a baseline stream, an RSoXS run with three 6x5 frames."""
    folder = tmp_path_factory.mktemp("pristine")
    with BeamtimeWriter(folder / f"{NAME}.db", seed=11) as w:
        write_nexafs(w, T0, n=4)
        uid = write_rsoxs(w, T0 + 100, n=3)[0]
    return folder, uid


# ------------------------------------------------------------------ damage
def _sql(*statements: str, params: tuple[object, ...] = ()) -> Callable[[Path], None]:
    def damage(db: Path) -> None:
        conn = sqlite3.connect(db)
        try:
            for sql in statements:
                conn.execute(sql, params if "?" in sql else ())
            conn.commit()
        finally:
            conn.close()

    return damage


def _bytes(edit: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def damage(db: Path) -> None:
        db.write_bytes(edit(db.read_bytes()))

    return damage


def _array(db: Path) -> Path:
    runs = db.with_suffix(".zarr") / "runs"
    return next(p for p in runs.glob("*/detector_image"))


def _chunk(db: Path) -> Path:
    return next(p for p in sorted(_array(db).rglob("*")) if p.is_file() and p.name != "zarr.json")


def _array_meta(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(db: Path) -> None:
        meta_path = _array(db) / "zarr.json"
        meta = json.loads(meta_path.read_text())
        edit(meta)
        meta_path.write_text(json.dumps(meta))

    return damage


def _as_directory(db: Path) -> None:
    db.unlink()
    db.mkdir()


def _store_is_file(db: Path) -> None:
    shutil.rmtree(db.with_suffix(".zarr"))
    db.with_suffix(".zarr").write_text("not a store")


def _chunk_escapes(db: Path) -> None:
    chunk = _chunk(db)
    outside = db.parent.parent / "outside.bin"
    outside.write_bytes(chunk.read_bytes())  # readable and would decode: still refused
    chunk.unlink()
    chunk.symlink_to(outside)


def _set_shape(meta: dict) -> None:
    meta["shape"] = [10**15, 6, 5]


def _set_dtype(meta: dict) -> None:
    meta["data_type"] = "float64"


def _set_codec(meta: dict) -> None:
    meta["codecs"] = [{"name": "no-such-codec"}]


DEEP = '{"a":' * 600 + "1" + "}" * 600

DAMAGE: dict[str, Callable[[Path], None]] = {
    # the file itself
    "not SQLite": _bytes(lambda b: b"this is not a database\n" * 200),
    "empty file": _bytes(lambda b: b""),
    "truncated": _bytes(lambda b: b[: len(b) // 3]),
    "garbled pages": _bytes(lambda b: b[:1024] + bytes(np.random.default_rng(0).integers(0, 256, 8192, dtype=np.uint8)) + b[9216:]),
    "a directory": _as_directory,
    "schema too new": _sql("PRAGMA user_version = 99"),
    "runs dropped": _sql("DROP TABLE runs"),
    "column missing": _sql("ALTER TABLE events DROP COLUMN timestamps"),
    "runs is a view": _sql("ALTER TABLE runs RENAME TO r2", "CREATE VIEW runs AS SELECT * FROM r2"),
    # rows
    "event data not JSON": _sql("UPDATE events SET data = '{\"energy_position\": 1'"),
    "event data a list": _sql("UPDATE events SET data = '[1, 2]'"),
    "event data a BLOB": _sql("UPDATE events SET data = x'00ff7b'"),
    "event data deep": _sql("UPDATE events SET data = ?", params=(DEEP,)),
    "event time text": _sql("UPDATE events SET time = 'yesterday'"),
    "seq_num text": _sql("UPDATE events SET seq_num = 'n' || seq_num"),
    "data_keys not JSON": _sql("UPDATE streams SET data_keys = 'nope'"),
    "data_keys a list": _sql("UPDATE streams SET data_keys = '[]'"),
    "descriptors odd": _sql("UPDATE streams SET data_keys = '{\"detector_image\": {\"external\": 1, \"shape\": \"big\"}, \"i0\": 5}'"),
    "metadata not JSON": _sql("UPDATE runs SET metadata = '{'"),
    "metadata huge int and NaN": _sql("UPDATE runs SET metadata = '{\"n\": 1180591620717411303424, \"T\": NaN}'"),
    "metadata deep": _sql("UPDATE runs SET metadata = ?", params=(DEEP,)),
    "time_start text": _sql("UPDATE runs SET time_start = 'x'"),
    "num_events BLOB": _sql("UPDATE runs SET num_events = x'01'"),
    "plan_name BLOB": _sql("UPDATE runs SET plan_name = x'ff00'"),
    "sample gone": _sql("UPDATE runs SET sample_id = 999"),
    "sample tags not JSON": _sql("UPDATE samples SET tags = '[', extra = '{'"),
    "zarr_group BLOB": _sql("UPDATE image_refs SET zarr_group = x'2e2e'"),
    "zarr_group NUL": _sql("UPDATE image_refs SET zarr_group = zarr_group || char(0) || 'x'"),
    "zarr_group escapes": _sql("UPDATE image_refs SET zarr_group = '../../../../etc'"),
    "index huge": _sql("UPDATE image_refs SET index_in_stack = 1000000000000"),
    "index negative": _sql("UPDATE image_refs SET index_in_stack = -1"),
    "shape text": _sql("UPDATE image_refs SET shape_x = 'wide'"),
    "shape negative": _sql("UPDATE image_refs SET shape_x = -5"),
    "dtype garbage": _sql("UPDATE image_refs SET dtype = 'garbage'"),
    "dtype object": _sql("UPDATE image_refs SET dtype = 'object'"),
    "two refs for one frame": _sql(
        "INSERT INTO image_refs (event_uid, field_name, zarr_group, index_in_stack, shape_x, shape_y, dtype) "
        "SELECT event_uid, field_name, zarr_group, index_in_stack, shape_x, shape_y, dtype FROM image_refs"
    ),
    # the store
    "store missing": lambda db: shutil.rmtree(db.with_suffix(".zarr")),
    "store a file": _store_is_file,
    "chunk garbled": lambda db: _chunk(db).write_bytes(b"\x00garbage" * 7),
    "chunk truncated": lambda db: _chunk(db).write_bytes(_chunk(db).read_bytes()[:9]),
    "chunk escapes": _chunk_escapes,
    "array metadata not JSON": lambda db: (_array(db) / "zarr.json").write_text("{"),
    "array shape absurd": _array_meta(_set_shape),
    "array dtype differs": _array_meta(_set_dtype),
    "array codec unknown": _array_meta(_set_codec),
    "root metadata gone": lambda db: (db.with_suffix(".zarr") / "zarr.json").unlink(),
}


#: Damage that loses nothing a command needs: every command still succeeds.
READABLE = {"descriptors odd", "metadata huge int and NaN", "sample gone", "array shape absurd", "root metadata gone"}


def _commands(folder: Path, db: Path, uid: str, out: Path) -> list[list[object]]:
    return [
        ["ls", db],
        ["ls", folder],
        ["show", db, uid],
        ["check", db],
        ["check", "--pixels", db],
        ["export", db, uid, "-q", "-o", out / "run.nc"],
        ["export", db, uid, "-q", "-o", out / "run.zarr"],
        ["plot", db, uid, "-o", out / "mean.png"],
        ["plot", db, uid, "--frame", "-1", "-o", out / "last.png"],
        ["catalog", "--v2", folder],
    ]


@pytest.mark.parametrize("case", list(DAMAGE))
def test_no_damage_gives_a_traceback(pristine: tuple[Path, str], tmp_path: Path, case: str) -> None:
    folder = tmp_path / "data"
    shutil.copytree(pristine[0], folder, symlinks=True)
    db, uid = folder / f"{NAME}.db", pristine[1]
    DAMAGE[case](db)
    out = tmp_path / "out"
    out.mkdir()
    before = beamtime_digest(db)
    failed = 0
    for args in _commands(folder, db, uid, out):
        result = run_cli(*args)  # an uncaught exception fails the test with its traceback
        where = f"{case}: {' '.join(map(str, args[:2]))}"
        allowed = (0, 1, 2) if args[0] == "check" else (0, 2)
        assert result.exit_code in allowed, (where, result.exit_code, result.stderr)
        assert "Traceback" not in result.stderr, (where, result.stderr)
        if result.exit_code:
            failed += 1
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].strip(), (where, result.stderr)
    if case in READABLE:
        assert not failed, f"{case}: {failed} command(s) failed"
    else:
        assert failed, f"{case}: every command passed; the damage did nothing"
    assert beamtime_digest(db) == before
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no partial output left


# --------------------------------------------------------------- mixed types
@pytest.fixture
def mixed(tmp_path: Path) -> tuple[Path, str]:
    """A run whose float column holds "n/a" where the motor did not answer, and a field of mixed kinds."""
    path = tmp_path / "mixed.db"
    keys = {"energy_position": {"dtype": "number", "units": "eV"}, "note": {"dtype": "string"}}
    with BeamtimeWriter(path) as w:
        uid = w.open_run("scan", time=T0)
        w.open_stream("primary", keys, time=T0)
        for i, (energy, note) in enumerate([(280.0, "ok"), ("n/a", 1), (281.5, [1, 2]), (None, None)]):
            w.write_event({"energy_position": energy, "note": note}, time=T0 + 1 + i)
        w.close_run("success", time=T0 + 9)
    return path, uid


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_mixed_type_column_exports_with_strings_kept(mixed: tuple[Path, str], tmp_path: Path, suffix: str) -> None:
    path, uid = mixed
    out = tmp_path / f"run{suffix}"
    result = run_cli("export", path, uid, "-q", "-o", out)
    assert result.exit_code == 0, result.stderr
    with xr.open_dataset(out, engine="h5netcdf" if suffix == ".nc" else "zarr") as ds:
        assert ds.energy_position.values.tolist() == ["280.0", "n/a", "281.5", ""]
        assert ds.note.values.tolist() == ["ok", "1", "[1,2]", ""]
        assert ds.energy_position.attrs["units"] == "eV"
        assert "as text" in ds.energy_position.attrs["mixed_types"]


# --------------------------------------------------------------------- plot
def test_plot_refuses_to_overwrite_without_force(pristine: tuple[Path, str], tmp_path: Path) -> None:
    db, uid = pristine[0] / f"{NAME}.db", pristine[1]
    out = tmp_path / "mean.png"
    out.write_bytes(b"keep me")
    cli_refuses("plot", db, uid, "-o", out, words=(str(out), "already exists", "--force"))
    assert out.read_bytes() == b"keep me"
    link = tmp_path / "link.png"
    link.symlink_to(tmp_path / "nowhere.png")  # a dangling link is an existing name too
    cli_refuses("plot", db, uid, "-o", link, words=("already exists",))
    result = run_cli("plot", db, uid, "-o", out, "--force")
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("command", ["export", "plot"])
def test_unwritable_output_is_one_line(pristine: tuple[Path, str], tmp_path: Path, command: str) -> None:
    db, uid = pristine[0] / f"{NAME}.db", pristine[1]
    suffix = ".nc" if command == "export" else ".png"
    # /proc takes no new files, not even from root (a chmod'ed folder would not stop root)
    line = cli_refuses(command, db, uid, "-q" if command == "export" else "--force", "-o", f"/proc/out{suffix}")
    has_words(line, f"/proc/out{suffix}", "cannot write")
    occupied = tmp_path / "file"
    occupied.write_text("x")
    cli_refuses(command, db, uid, "-o", occupied / f"out{suffix}", words=("does not exist",))


# --------------------------------------------------------------------- demo
def test_demo_force_replaces_only_our_demo(tmp_path: Path) -> None:
    """(That ``demo --force`` replaces our own demo, test_cli shows.)"""
    real = tmp_path / "real"
    with BeamtimeWriter(real / "demo_beamtime.db") as w:  # a beamtime that happens to have the demo's name
        write_rsoxs(w, T0)
    before = beamtime_digest(real / "demo_beamtime.db")
    cli_refuses("demo", real, "--force", "--frame-shape", 16, 16, words=(str(real / "demo_beamtime.db"), "not the demo"))
    assert beamtime_digest(real / "demo_beamtime.db") == before
    # a store alone, with no database saying whose it is, is not replaced either
    (real / "demo_beamtime.db").unlink()
    before = beamtime_digest(real / "demo_beamtime.zarr")
    cli_refuses("demo", real, "--force", "--frame-shape", 16, 16, words=("not the demo",))
    assert beamtime_digest(real / "demo_beamtime.zarr") == before
    with pytest.raises(FileExistsError, match="not the demo"):  # the library refuses too
        write_demo(real, frame_shape=(16, 16), overwrite=True)
    assert beamtime_digest(real / "demo_beamtime.zarr") == before


def test_demo_never_writes_into_a_store(pristine: tuple[Path, str], tmp_path: Path) -> None:
    folder = tmp_path / "data"
    shutil.copytree(pristine[0], folder, symlinks=True)
    store = folder / f"{NAME}.zarr"
    before = beamtime_digest(folder / f"{NAME}.db")
    (tmp_path / "link").symlink_to(store)
    for target in (store, store / "runs" / "demo", tmp_path / "link"):
        cli_refuses("demo", target, "--frame-shape", 16, 16, words=("inside the Zarr store",))
    assert beamtime_digest(folder / f"{NAME}.db") == before


def test_demo_unwritable_folder_is_one_line(tmp_path: Path) -> None:
    occupied = tmp_path / "file"
    occupied.write_text("x")
    cli_refuses("demo", occupied / "sub", "--frame-shape", 16, 16, words=(str(occupied / "sub"),))
    cli_refuses("demo", "/proc/demo", "--frame-shape", 16, 16, words=("/proc/demo",))
