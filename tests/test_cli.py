"""The ``intake-resonance`` command: output values, filters, exit codes, files written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import intake
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from conftest import T0, Written, write_nexafs, write_rsoxs

from intake_resonance import open_run_dataset
from intake_resonance.beamtime.frames import FrameStack
from intake_resonance.tools import demo
from intake_resonance.tools.cli import catalog_yaml, cli
from intake_resonance.tools.writer import BeamtimeWriter

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def runner() -> CliRunner:
    try:  # click < 8.2 mixes stderr into stdout unless told not to
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        return CliRunner()


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo.write_demo(tmp_path_factory.mktemp("demo"), frame_shape=(32, 32))


@pytest.fixture(scope="module")
def demo_runs(demo_db: Path) -> list[dict]:
    """The demo's runs as the catalog lists them (oldest first)."""
    df = intake.open_resonance_beamtime(str(demo_db)).to_dataframe()
    return df.to_dict("records")


def _run(runner: CliRunner, *args: object):
    return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _assert_bad_input(result, *words: str) -> None:
    """Exit 2, nothing on stdout, exactly one line on stderr mentioning every word."""
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]


def _rows(stdout: str) -> list[list[str]]:
    return [line.split() for line in stdout.strip().splitlines()[1:]]


# ---------------------------------------------------------------------- demo
def test_demo_writes_and_refuses_to_overwrite(runner: CliRunner, tmp_path: Path) -> None:
    result = _run(runner, "demo", tmp_path / "d", "--frame-shape", 16, 16)
    assert result.exit_code == 0
    db = tmp_path / "d" / "demo_beamtime.db"
    assert result.stdout.strip() == str(db)
    assert db.is_file() and (tmp_path / "d" / "demo_beamtime.zarr").is_dir()
    _assert_bad_input(_run(runner, "demo", tmp_path / "d"), str(db), "--force")
    assert _run(runner, "demo", tmp_path / "d", "--force", "--frame-shape", 16, 16).exit_code == 0


def test_demo_rejects_a_tiny_frame_shape(runner: CliRunner, tmp_path: Path) -> None:
    _assert_bad_input(_run(runner, "demo", tmp_path, "--frame-shape", 4, 4), "--frame-shape")


# ------------------------------------------------------------------------ ls
def test_ls_lists_every_run_oldest_first(runner: CliRunner, demo_db: Path, demo_runs: list[dict]) -> None:
    result = _run(runner, "ls", demo_db)
    assert result.exit_code == 0
    rows = _rows(result.stdout)
    assert [r[0] for r in rows] == [r["uid"][:8] for r in demo_runs]
    assert [r[1] for r in rows] == [r["plan_name"] for r in demo_runs]
    assert [r[2] for r in rows] == [r["sample"] if isinstance(r["sample"], str) else "-" for r in demo_runs]
    assert [r[5] for r in rows] == [r["exit_status"] if isinstance(r["exit_status"], str) else "open" for r in demo_runs]
    assert [[int(v) for v in r[6:9]] for r in rows] == [[r["num_events"], r["stream_events"], r["frames"]] for r in demo_runs]
    assert rows[0][3] == "2026-03-05T09:00:00Z"
    assert rows[-1][4:9] == ["-", "open", "8", "6", "6"]  # still being written: 2 baseline + 6 primary events, 6 frames
    assert f"{len(demo_runs)} run(s)" in result.stderr


def _ls_beamtime(path: Path, t0: float) -> dict[str, str]:
    with BeamtimeWriter(path) as w:
        nexafs, _ = write_nexafs(w, t0, n=8)  # 1 baseline + 8 primary, 280-283.5 eV, closed at t0 + 9
        rsoxs, _, frames = write_rsoxs(w, t0 + 3600, n=5)  # 5 events and frames, 285-289 eV, closed at + 6
        live = w.open_run("rsoxs", sample="PS", time=t0 + 7200)
        w.open_stream("primary", {"energy_position": {"dtype": "number"}}, time=t0 + 7200)
        for i in range(3):
            ev = w.write_event({"energy_position": 290.0 - i}, time=t0 + 7201 + i)
            w.write_image(ev, "detector_image", frames[i])
        w.close()  # the last run stays open: its three events and frames are committed
    return {"nexafs": nexafs, "rsoxs": rsoxs, "live": live}


def test_ls_counts_duration_energy(runner: CliRunner, tmp_path: Path) -> None:
    uids = _ls_beamtime(tmp_path / "bt.db", T0)
    result = _run(runner, "ls", tmp_path / "bt.db")
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.strip().splitlines()
    assert header.split() == ["uid", "plan", "sample", "start", "(UTC)", "duration", "status", "events", "primary",
                              "frames", "energy"]
    rows = {r[0]: r for r in (line.split() for line in lines)}
    assert rows[uids["nexafs"][:8]][4:] == ["0:00:09", "success", "9", "8", "0", "280-283.5"]
    assert rows[uids["rsoxs"][:8]][4:] == ["0:00:06", "success", "5", "5", "5", "285-289"]
    assert rows[uids["live"][:8]][4:] == ["-", "open", "3", "3", "3", "288-290"]
    out = _run(runner, "show", tmp_path / "bt.db", uids["live"]).stdout  # show gives the same counts
    assert "  num_events: 3" in out and "  primary: 3 events, 3 frames" in out
    out = _run(runner, "show", tmp_path / "bt.db", uids["nexafs"]).stdout
    assert "  num_events: 9" in out and "  baseline: 1 events" in out and "  primary: 8 events" in out


def test_ls_folder_lists_every_beamtime(runner: CliRunner, tmp_path: Path) -> None:
    a = _ls_beamtime(tmp_path / "a_first.db", T0)
    b = _ls_beamtime(tmp_path / "b_second.db", T0 + 86400)
    (tmp_path / "notes.txt").write_text("not a beamtime")
    result = _run(runner, "ls", tmp_path)
    assert result.exit_code == 0, result.output
    rows = _rows(result.stdout)
    assert [(r[0], r[1]) for r in rows] == [("a_first", u[:8]) for u in a.values()] + [("b_second", u[:8]) for u in b.values()]
    assert result.stdout.splitlines()[0].split()[:2] == ["beamtime", "uid"]
    assert "6 run(s) in 2 beamtime(s)" in result.stderr
    rows = _rows(_run(runner, "ls", tmp_path, "--plan", "nexafs").stdout)
    assert [(r[0], r[1]) for r in rows] == [("a_first", a["nexafs"][:8]), ("b_second", b["nexafs"][:8])]
    empty = tmp_path / "empty"
    empty.mkdir()
    _assert_bad_input(_run(runner, "ls", empty), "empty", "no beamtime")


def test_ls_filters(runner: CliRunner, demo_db: Path, demo_runs: list[dict]) -> None:
    rows = _rows(_run(runner, "ls", demo_db, "--plan", "en_scan", "--plan", "rsoxs").stdout)
    assert [r[0] for r in rows] == [r["uid"][:8] for r in demo_runs if r["plan_name"] in ("en_scan", "rsoxs")]
    rows = _rows(_run(runner, "ls", demo_db, "--sample", "PS").stdout)
    assert [r[0] for r in rows] == [r["uid"][:8] for r in demo_runs if r["sample"] == "PS"]
    assert {r[2] for r in rows} == {"PS"}
    rows = _rows(_run(runner, "ls", demo_db, "--since", "2026-03-06").stdout)
    expected = [r["uid"][:8] for r in demo_runs if r["time_start"].isoformat() >= "2026-03-06"]
    assert [r[0] for r in rows] == expected and 0 < len(expected) < len(demo_runs)
    rows = _rows(_run(runner, "ls", demo_db, "--plan", "nexafs", "--sample", "PS", "--since", "2026-03-06").stdout)
    assert len(rows) == 1 and rows[0][1:3] == ["nexafs", "PS"]
    assert _rows(_run(runner, "ls", demo_db, "--plan", "no_such_plan").stdout) == []


def test_ls_bad_inputs(runner: CliRunner, tmp_path: Path, demo_db: Path) -> None:
    _assert_bad_input(_run(runner, "ls", tmp_path / "missing.db"), "missing.db", "does not exist")
    junk = tmp_path / "junk.db"
    junk.write_text("not a database")
    _assert_bad_input(_run(runner, "ls", junk), "junk.db", "SQLite")
    _assert_bad_input(_run(runner, "ls", demo_db, "--since", "yesterday-ish"), "--since")
    _assert_bad_input(_run(runner, "ls"), "PATH")
    _assert_bad_input(_run(runner, "frobnicate"), "frobnicate")


# ---------------------------------------------------------------------- show
def test_show_lists_attrs_streams_and_fields_without_reading_frames(
    runner: CliRunner, beamtime_path: Written, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_reads(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("show read a frame")

    monkeypatch.setattr(FrameStack, "__getitem__", no_reads)
    uid = beamtime_path.uids["rsoxs"]
    result = _run(runner, "show", beamtime_path.path, uid[:8])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.splitlines()[0] == f"run {uid}"
    assert "  plan_name: rsoxs" in out
    assert "  num_events: 5" in out
    assert "  operator: bob" in out
    assert "sample: P3HT" in out
    assert "  metadata_edge: C" in out or "  edge: C" in out
    assert "streams: 1" in out
    assert "  primary: 5 events" in out
    fields = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("    ")}
    assert fields["energy_position"][:3] == ["float64", "5", "eV"]
    assert fields["exposure"][:3] == ["float64", "5", "s"]
    assert fields["detector_image"][:2] == ["int32", "5x6x5"]


def test_show_nexafs_has_both_streams(runner: CliRunner, beamtime_path: Written) -> None:
    out = _run(runner, "show", beamtime_path.path, beamtime_path.uids["nexafs"]).stdout
    assert "streams: 2" in out
    assert "  baseline: 1 events" in out and "  primary: 8 events" in out
    assert "    photodiode" in out and "    beam_current" in out
    assert "detector_image" not in out


def test_show_unknown_uid(runner: CliRunner, beamtime_path: Written) -> None:
    _assert_bad_input(_run(runner, "show", beamtime_path.path, "ffffffffff"), str(beamtime_path.path), "ffffffffff")
    _assert_bad_input(_run(runner, "show", beamtime_path.path, "ab"), "too short")


# --------------------------------------------------------------------- check
def test_check_demo_has_only_the_open_run_warning(runner: CliRunner, demo_db: Path, demo_runs: list[dict]) -> None:
    result = _run(runner, "check", demo_db)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    open_uid = demo_runs[-1]["uid"]
    assert len(lines) == 1 and lines[0].startswith("warning:") and open_uid in lines[0]
    assert "0 error(s), 1 warning(s)" in result.stderr


def test_check_clean_beamtime(runner: CliRunner, beamtime_path: Written) -> None:
    result = _run(runner, "check", beamtime_path.path)
    assert result.exit_code == 0 and result.stdout == ""


def test_check_bad_event_json_exits_1_naming_the_run(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "bad.db"
    with BeamtimeWriter(path, seed=1) as w:
        good, _ = write_nexafs(w, T0, n=3)
        bad = w.open_run("nexafs", sample="PS", time=T0 + 100)
        w.open_stream("primary", {"i0": {"dtype": "number"}}, time=T0 + 100)
        w.write_event({}, time=T0 + 101, raw_data='{"i0": 1.0,')  # cut off mid-write
        w.close_run("success", time=T0 + 102)
    result = _run(runner, "check", path)
    assert result.exit_code == 1
    errors = [line for line in result.stdout.splitlines() if line.startswith("error:")]
    assert errors and all(bad in line for line in errors)
    assert not any(good in line for line in result.stdout.splitlines())


def test_check_frame_index_beyond_the_array(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "refs.db"
    with BeamtimeWriter(path, seed=2) as w:
        uid, _, _ = write_rsoxs(w, T0, n=3)
        w.connection.execute("UPDATE image_refs SET index_in_stack = 7 WHERE index_in_stack = 2")
        w.connection.commit()
    result = _run(runner, "check", path)
    assert result.exit_code == 1
    errors = [line for line in result.stdout.splitlines() if line.startswith("error:")]
    assert errors and uid in errors[0] and "detector_image" in errors[0]
    # Without frames the references are not compared with the store.
    assert _run(runner, "check", path, "--no-frames").exit_code == 0


def test_check_missing_file_is_bad_input(runner: CliRunner, tmp_path: Path) -> None:
    _assert_bad_input(_run(runner, "check", tmp_path / "gone.db"), "gone.db")


# -------------------------------------------------------------------- export
@pytest.mark.parametrize("suffix,engine", [(".nc", "h5netcdf"), (".zarr", "zarr")])
def test_export_round_trips(runner: CliRunner, beamtime_path: Written, tmp_path: Path, suffix: str, engine: str) -> None:
    uid = beamtime_path.uids["rsoxs"]
    out = tmp_path / f"run{suffix}"
    result = _run(runner, "export", beamtime_path.path, uid[:8], "-o", out, "--progress")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert "5/5" in result.stderr  # the progress bar counted every frame
    expected = open_run_dataset(beamtime_path.path, uid).load()
    with xr.open_dataset(out, engine=engine) as got:
        xr.testing.assert_identical(got.load(), expected)
        np.testing.assert_array_equal(got.detector_image.values, beamtime_path.frames["rsoxs"])
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())


def test_export_other_stream_and_no_frames(runner: CliRunner, beamtime_path: Written, tmp_path: Path) -> None:
    uid = beamtime_path.uids["nexafs"]
    out = tmp_path / "baseline.nc"
    assert _run(runner, "export", beamtime_path.path, uid, "--stream", "baseline", "-o", out).exit_code == 0
    with xr.open_dataset(out, engine="h5netcdf") as got:
        assert got.attrs["stream"] == "baseline"
        assert got.beam_current.values.tolist() == [500.1]


def test_export_refuses_to_overwrite(runner: CliRunner, beamtime_path: Written, tmp_path: Path) -> None:
    uid = beamtime_path.uids["nexafs"]
    out = tmp_path / "run.nc"
    out.write_text("precious")
    _assert_bad_input(_run(runner, "export", beamtime_path.path, uid, "-o", out), str(out), "--force")
    assert out.read_text() == "precious"
    assert _run(runner, "export", beamtime_path.path, uid, "-o", out, "--force", "-q").exit_code == 0
    with xr.open_dataset(out, engine="h5netcdf") as got:
        assert got.sizes["time"] == 8


def test_export_bad_inputs(runner: CliRunner, beamtime_path: Written, tmp_path: Path) -> None:
    uid = beamtime_path.uids["rsoxs"]
    _assert_bad_input(_run(runner, "export", beamtime_path.path, uid, "-o", tmp_path / "x.csv"), "x.csv", ".nc")
    store = beamtime_path.path.with_suffix(".zarr")
    _assert_bad_input(_run(runner, "export", beamtime_path.path, uid, "-o", store, "--force"), "refusing")
    assert store.is_dir()
    _assert_bad_input(_run(runner, "export", beamtime_path.path, uid, "--stream", "nope", "-o", tmp_path / "x.nc"),
                      "nope")
    _assert_bad_input(_run(runner, "export", beamtime_path.path, uid), "-o")
    _assert_bad_input(_run(runner, "export", beamtime_path.path, uid, "-o", tmp_path / "no" / "x.nc"), "does not exist")


# ---------------------------------------------------------------------- plot
def _assert_png(path: Path, min_bytes: int = 5_000) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > min_bytes


@pytest.mark.parametrize("kind", ["nexafs", "rsoxs"])
def test_plot_writes_a_png(runner: CliRunner, beamtime_path: Written, tmp_path: Path, kind: str) -> None:
    out = tmp_path / f"{kind}.png"
    result = _run(runner, "plot", beamtime_path.path, beamtime_path.uids[kind], "-o", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    _assert_png(out)


def test_plot_demo_frames_and_spectrum(runner: CliRunner, demo_db: Path, demo_runs: list[dict], tmp_path: Path) -> None:
    rsoxs = [r["uid"] for r in demo_runs if r["plan_name"] == "rsoxs"][-1]
    nexafs = [r["uid"] for r in demo_runs if r["plan_name"] == "nexafs"][0]
    for name, args in {
        "mean.png": (rsoxs,),
        "log.png": (rsoxs, "--frame", "-1", "--log"),
        "nexafs.png": (nexafs,),
        "baseline.png": (nexafs, "--stream", "baseline"),
    }.items():
        result = _run(runner, "plot", demo_db, *args, "-o", tmp_path / name)
        assert result.exit_code == 0, (name, result.output)
        _assert_png(tmp_path / name)


def test_plot_frame_help_says_0_based(runner: CliRunner) -> None:
    out = " ".join(_run(runner, "plot", "--help").stdout.split())
    assert "--frame INTEGER Show the frame at this 0-based position" in out


def test_plot_bad_frame(runner: CliRunner, beamtime_path: Written, tmp_path: Path) -> None:
    uid = beamtime_path.uids["rsoxs"]
    result = _run(runner, "plot", beamtime_path.path, uid, "--frame", 5, "-o", tmp_path / "x.png")
    _assert_bad_input(result, "frame 5 out of range for 5 frames", uid)
    result = _run(runner, "plot", beamtime_path.path, uid, "--field", "nope", "-o", tmp_path / "x.png")
    _assert_bad_input(result, "nope")
    assert not (tmp_path / "x.png").exists()
    _assert_bad_input(_run(runner, "plot", beamtime_path.path, uid, "-o", tmp_path / "x.gif"), "x.gif", ".png")
    _assert_bad_input(_run(runner, "plot", beamtime_path.path, uid, "-o", tmp_path / "no" / "x.png"), "does not exist")


# ------------------------------------------------------------------- catalog
def test_catalog_opens_with_intake(runner: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "beamtimes"
    uids = {}
    for i, stem in enumerate(("b_second", "a_first")):
        with BeamtimeWriter(folder / f"{stem}.db", seed=i) as w:
            uids[stem] = [write_nexafs(w, T0 + 10 * j, n=2)[0] for j in range(i + 1)]
    result = _run(runner, "catalog", folder)
    assert result.exit_code == 0
    assert result.stdout == catalog_yaml(folder)
    yaml_file = tmp_path / "elsewhere" / "cat.yaml"
    yaml_file.parent.mkdir()
    yaml_file.write_text(result.stdout)
    cat = intake.open_catalog(str(yaml_file))
    assert sorted(cat) == ["a_first", "b_second", "beamtimes"]
    assert list(cat.a_first) == uids["a_first"]
    assert list(cat["b_second"]) == uids["b_second"]
    assert list(cat.beamtimes) == ["a_first", "b_second"]
    assert cat.beamtimes.b_second[-1].to_dask().sizes["time"] == 2


def test_catalog_bad_folder(runner: CliRunner, tmp_path: Path) -> None:
    _assert_bad_input(_run(runner, "catalog", tmp_path / "nowhere"), "nowhere")


# ---------------------------------------------------------- the console script
def test_console_script_one_line_errors(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "intake_resonance.tools.cli", "ls", str(tmp_path / "nope.db")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [f"intake-resonance: error: {tmp_path / 'nope.db'}: beamtime database does not exist"]


def _console(*args: object, stderr: int | None = subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "intake_resonance.tools.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        timeout=120,
    )


def test_progress_only_on_a_terminal(beamtime: Written, tmp_path: Path) -> None:
    import fcntl
    import os
    import pty
    import struct
    import termios

    uid = beamtime.uids["rsoxs"]
    piped = _console("export", beamtime.path, uid, "-o", tmp_path / "a.nc")
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr == ""  # a script or CI log gets no bar
    forced = _console("export", beamtime.path, uid, "-o", tmp_path / "b.nc", "--progress")
    assert "5/5" in forced.stderr
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 columns wide
    try:
        tty = _console("export", beamtime.path, uid, "-o", tmp_path / "c.nc", stderr=follower)
        os.close(follower)
        follower = -1
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: everything was read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    assert tty.returncode == 0
    assert b"5/5" in drawn  # on a terminal, the bar is there by default


def test_a_failed_export_is_one_line_on_stderr(tmp_path: Path) -> None:
    path = tmp_path / "refs.db"
    with BeamtimeWriter(path, seed=3) as w:
        uid, _, _ = write_rsoxs(w, T0, n=3)
        w.connection.execute("UPDATE image_refs SET index_in_stack = 9 WHERE index_in_stack = 1")
        w.connection.commit()
    proc = _console("export", path, uid, "-o", tmp_path / "run.nc")
    assert proc.returncode == 2
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("intake-resonance: error: ") and uid in line and "index_in_stack 9" in line


@pytest.fixture
def beamtime_path(beamtime: Written) -> Written:
    """The shared small beamtime (a NEXAFS run with baseline, an RSoXS run with 5 frames of 6x5)."""
    return beamtime


def test_broken_frames_are_bad_input_for_export_and_plot(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "refs.db"
    with BeamtimeWriter(path, seed=3) as w:
        uid, _, _ = write_rsoxs(w, T0, n=3)
        w.connection.execute("UPDATE image_refs SET index_in_stack = 9 WHERE index_in_stack = 1")
        w.connection.commit()
    out = tmp_path / "run.nc"
    _assert_bad_input(_run(runner, "export", path, uid, "-o", out, "-q"), "refs.zarr", uid, "index_in_stack 9")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["refs.db", "refs.zarr"]  # no partial file left
    _assert_bad_input(_run(runner, "plot", path, uid, "-o", tmp_path / "x.png"), "refs.zarr", uid)
    # Reading what is sound still works: the scalar columns and the first frame.
    assert _run(runner, "plot", path, uid, "--frame", 0, "-o", tmp_path / "x.png").exit_code == 0


def test_beamtime_text_reaches_the_terminal_escaped(tmp_path: Path, runner: CliRunner) -> None:
    """OSC 52 (clipboard), a window title, clear screen, a carriage return, a bidi override and a forged line."""
    path = tmp_path / "evil.db"
    evil_sample = "PS\x1b]52;c;ZXZpbA==\x07\nforged  line\r\u202e"
    with BeamtimeWriter(path) as w:
        uid = w.open_run("scan\x1b]0;title\x07\x1b[2J", sample=evil_sample, time=T0, operator="eve\x1b[8m")
        w.open_stream("primary", {"i0\x1b[31m": {"units": "V\x1b[0m"}}, time=T0)
        w.write_event({"i0\x1b[31m": 1.0}, time=T0 + 1)
        w.close_run(time=T0 + 2)
    outs = [_run(runner, "ls", path), _run(runner, "show", path, uid), _run(runner, "check", path)]
    for result in outs:
        for text in (result.stdout, result.stderr):
            assert not any(c in text for c in "\x1b\x07\r\u202e"), repr(text)
    ls_lines = outs[0].stdout.splitlines()
    assert len(ls_lines) == 2 and "\\x1b]52;c;ZXZpbA==\\x07\\nforged" in ls_lines[1]  # the header and one run, its text visible
    assert "\\x1b[8m" in outs[1].stdout and "i0\\x1b[31m" in outs[1].stdout


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--seed", "-1"], "--seed"),
        (["--frame-shape", "100000", "100000"], "--frame-shape"),
        (["--frame-shape", "8", "8"], "--frame-shape"),
    ],
)
def test_demo_refuses_what_it_cannot_make_naming_the_option(
    tmp_path: Path, runner: CliRunner, args: list[str], option: str
) -> None:
    result = runner.invoke(cli, ["demo", str(tmp_path / "d"), *args])
    _assert_bad_input(result, option)
    assert not (tmp_path / "d").exists()  # refused before anything is written (no MemoryError, no half demo)
