"""``intake-resonance virtualize``: the repository it writes, appending, and failures as one line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from conftest import T0, write_nexafs, write_rsoxs

pytest.importorskip("virtualizarr")
pytest.importorskip("icechunk")

from intake_resonance import open_run_dataset  # noqa: E402
from intake_resonance.tools.cli import cli  # noqa: E402
from intake_resonance.tools.writer import BeamtimeWriter  # noqa: E402
from intake_resonance.virtual import open_virtual_session  # noqa: E402


def _run(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _console(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "intake_resonance.tools.cli", *map(str, args)],
        capture_output=True, text=True, timeout=120,
    )


def test_virtualize_writes_then_appends(tmp_path, beamtime):
    repo = tmp_path / "bt.icechunk"
    first = _run("virtualize", beamtime.path, "-o", repo, "--run", beamtime.uids["rsoxs"][:8])
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith(f"{repo}: 1 run(s) written, 0 unchanged, 0 skipped, 5 frame(s) referenced; snapshot ")
    got = xr.open_zarr(open_virtual_session(repo).store, group=f"{beamtime.uids['rsoxs']}/primary", consolidated=False, zarr_format=3)
    np.testing.assert_array_equal(got.detector_image.values, beamtime.frames["rsoxs"])
    second = _run("virtualize", beamtime.path, "-o", repo)
    assert second.exit_code == 0 and "1 run(s) written, 1 unchanged" in second.stdout
    third = _run("virtualize", beamtime.path, "-o", repo)
    assert third.exit_code == 0 and third.stdout.rstrip().endswith("nothing new, no commit")
    uid = beamtime.uids["nexafs"]
    xr.testing.assert_identical(
        xr.open_zarr(open_virtual_session(repo).store, group=f"{uid}/baseline", consolidated=False, zarr_format=3).load(),
        open_run_dataset(beamtime.path, uid, "baseline").load(),
    )


def test_skipped_runs_are_named_on_stderr(tmp_path):
    db = tmp_path / "t" / "bt.db"
    db.parent.mkdir()
    with BeamtimeWriter(db) as w:
        write_nexafs(w, T0)
        uid = w.open_run("scan", time=T0 + 100)
        w.open_stream("primary", {"note": {}}, time=T0 + 100)
        for i, note in enumerate(["a", None]):
            w.write_event({"note": note}, time=T0 + 101 + i)
        w.close_run(time=T0 + 110)
    result = _run("virtualize", db, "-o", tmp_path / "r", "--skip-unmappable")
    assert result.exit_code == 0
    assert "1 run(s) written, 0 unchanged, 1 skipped" in result.stdout
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"skipped run {uid}: ") and "'note'" in line


def test_failures_are_one_line_on_stderr_and_no_progress_in_a_pipe(tmp_path):
    db = tmp_path / "bt" / "bt.db"
    db.parent.mkdir()
    with BeamtimeWriter(db) as w:
        write_rsoxs(w, T0, n=3)
    ok = _console("virtualize", db, "-o", tmp_path / "ok")
    assert ok.returncode == 0, ok.stderr
    assert ok.stderr == ""  # no bar, no Icechunk warnings in a pipe
    forced = _console("virtualize", db, "-o", tmp_path / "forced", "--progress")
    assert "1/1" in forced.stderr
    for args, words in (
        (("-o", db.with_suffix(".zarr") / "repo"), ["inside the Zarr store"]),
        (("-o", db.parent), ["over or around the beamtime"]),
        (("-o", tmp_path / "y", "--run", "ffffffff"), ["ffffffff"]),
    ):
        result = _run("virtualize", db, *args)
        assert result.exit_code == 2 and result.stdout == ""
        (line,) = result.stderr.splitlines()
        assert line.startswith("intake-resonance: error: ") and all(w in line for w in words), line
    assert not (tmp_path / "y").exists()  # refused before anything was created
    missing = _run("virtualize", tmp_path / "nope.db", "-o", tmp_path / "x")
    assert missing.exit_code == 2 and len(missing.stderr.splitlines()) == 1 and "nope.db" in missing.stderr


def test_a_stale_repository_is_noticed_and_referenced_anew(tmp_path, beamtime):
    import os
    import time

    import zarr

    repo, uid = tmp_path / "bt.icechunk", beamtime.uids["rsoxs"]
    assert _run("virtualize", beamtime.path, "-o", repo).exit_code == 0
    ok = _run("virtualize", beamtime.path, "-o", repo, "--verify")
    assert ok.exit_code == 0 and ok.stdout == "" and ok.stderr.strip().endswith(": true")
    # a restore: the run's chunk files written again with other values (other sizes, later times)
    time.sleep(1.1)  # Icechunk keeps whole seconds
    arrays = [p for p in (beamtime.path.with_suffix(".zarr") / "runs" / uid).iterdir() if p.is_dir()]
    assert len(arrays) == 1
    arr = zarr.open_array(str(arrays[0]), mode="r+")
    new = (beamtime.frames["rsoxs"] * 3 + 7).astype(arr.dtype)
    arr[:] = new
    stale = _run("virtualize", beamtime.path, "-o", repo, "--verify")
    assert stale.exit_code == 1
    assert stale.stdout.splitlines() == [f"stale run {uid}: chunk files it references changed since (size or modification time)"]
    assert "1 run(s) no longer match" in stale.stderr
    again = _run("virtualize", beamtime.path, "-o", repo)
    assert again.exit_code == 0
    assert "1 run(s) written (1 because their chunk files changed), 1 unchanged" in again.stdout, again.stdout
    got = xr.open_zarr(open_virtual_session(repo).store, group=f"{uid}/primary", consolidated=False, zarr_format=3)
    np.testing.assert_array_equal(got.detector_image.values, new)
    assert _run("virtualize", beamtime.path, "-o", repo, "--verify").exit_code == 0
    none = tmp_path / "none"
    missing = CliRunner().invoke(cli, ["virtualize", str(beamtime.path), "-o", str(none), "--verify"])
    assert missing.exit_code == 2 and "no virtual repository here to verify" in missing.stderr
    assert not os.path.exists(none)  # verifying writes nothing


def test_a_rust_panic_in_icechunk_is_one_line(tmp_path, beamtime, monkeypatch):
    import icechunk

    class PanicException(BaseException):  # what pyo3 raises for a Rust panic (not an Exception)
        pass

    def panics(*args, **kwargs):
        raise PanicException("called `Result::unwrap()` on an `Err` value: Os { code: 30, kind: ReadOnlyFilesystem }")

    monkeypatch.setattr(icechunk.Repository, "create", panics)
    result = CliRunner().invoke(cli, ["virtualize", str(beamtime.path), "-o", str(tmp_path / "repo")])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot create an Icechunk repository here" in lines[0] and "ReadOnlyFilesystem" in lines[0]
