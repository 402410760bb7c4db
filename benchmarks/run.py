"""Speed figures of intake-resonance against the floors it cannot go below.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/run.py``). The
field-sized beamtime is written once into ``bench-data/`` (see
``generate.py``) and reused. Everything runs in this one process.

Each timing is the *minimum* of N repetitions (time.perf_counter) after one
warm-up call, for the work and its floor alike, so that both see warm OS
caches and neither pays one-off imports. A floor is the bare cost of getting
the same bytes with the underlying library (sqlite3, zarr); the ratio is
measured / floor.

Options: ``--repeat N`` (default 5), ``--markdown`` (print only the table,
as pasted into the README), ``--only NAME`` (one part: memory, scalar, open,
frames, catalog, show, stack, peak, entrypoint; repeatable).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generate  # noqa: E402  (the script's own folder)


@dataclass
class Row:
    """One line of the table."""

    work: str
    measured: float  # seconds, or MB for memory rows
    floor: float | None  # seconds
    target: str
    met: bool | None
    unit: str = "s"
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return None if not self.floor else self.measured / self.floor


def best(fn: Callable[[], Any], repeat: int) -> float:
    """Minimum wall time of ``fn`` over ``repeat`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def rss_mb() -> float:
    """Resident set size of this process in MiB (``VmRSS`` of /proc/self/status)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def machine() -> str:
    """One line naming the machine and the library versions."""
    import dask
    import numpy
    import pandas
    import xarray
    import zarr

    cpu = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "?")
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores, {cpu}; Python {platform.python_version()}, numpy {numpy.__version__}, "
        f"zarr {zarr.__version__}, dask {dask.__version__}, xarray {xarray.__version__}, "
        f"pandas {pandas.__version__}"
    )


def _ratio_row(work: str, measured: float, floor: float, limit: float) -> Row:
    return Row(work, measured, floor, f"<= {limit:g}x", measured / floor <= limit)


def _scalar_row(work: str, measured: float, floor: float) -> Row:
    ratio = measured / floor
    row = Row(work, measured, floor, "<= 1.5x (2.0 accepted)", ratio <= 1.5)
    if not row.met and ratio <= 2.0:
        row.note = "accepted"
    return row


def _abs_row(work: str, measured: float, limit_ms: float, floor: float | None = None) -> Row:
    return Row(work, measured, floor, f"<= {limit_ms:g} ms", measured * 1e3 <= limit_ms)


# ------------------------------------------------------------------ benchmarks
def scalar_rows(data: generate.BenchData, repeat: int) -> tuple[list[Row], float]:
    import orjson  # noqa: F401  (imported before timing)
    import pandas as pd

    from intake_resonance.beamtime.format import Database
    from intake_resonance.datasets.open import open_run_dataset
    from intake_resonance.faces.facade import Catalog

    uri = Path(data.db).resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    sql = (
        "SELECT e.seq_num, e.time, e.data FROM events e JOIN streams s ON s.uid = e.stream_uid "
        "WHERE s.run_uid = ? AND s.name = ? ORDER BY e.seq_num"
    )
    params = (data.scalar_run, "primary")
    floor = best(lambda: conn.execute(sql, params).fetchall(), repeat)

    def per_row_loop() -> pd.DataFrame:
        # The beamline reader's way: one json.loads per row, a list of records, then a DataFrame.
        recs = []
        for seq, t, text in conn.execute(sql, params).fetchall():
            rec = {"seq_num": seq, "time": t}
            rec.update(json.loads(text))
            recs.append(rec)
        return pd.DataFrame(recs)

    cat = Catalog(data.db)
    run = cat[data.scalar_run]
    db = Database(data.db)
    n = len(run.table())
    t_table = best(run.table, repeat)
    t_ds = best(lambda: open_run_dataset(db, data.scalar_run), repeat)
    t_loop = best(per_row_loop, max(1, repeat // 2))
    # SQLite walking the same rows and their JSON without handing any value to Python.
    scan = sql.replace("SELECT e.seq_num, e.time, e.data", "SELECT sum(e.seq_num), sum(e.time), sum(length(e.data))")
    t_scan = best(lambda: conn.execute(scan, params).fetchall(), repeat)
    cat.close()
    conn.close()
    what = f"{n // 1000}k events x 12 fields"
    rows = [
        _scalar_row(f"scalar table, {what}: facade Run.table()", t_table, floor),
        _scalar_row(f"scalar table, {what}: open_run_dataset (scalars loaded)", t_ds, floor),
        Row(f"scalar table, {what}: SQLite's raw scan of the same rows (physical limit)", t_scan, floor, "-", None),
        Row(f"scalar table, {what}: per-row json.loads loop -> DataFrame (beamline reader)", t_loop, floor, "-", None),
    ]
    return rows, t_table


def frame_rows(data: generate.BenchData, repeat: int) -> list[Row]:
    import xarray as xr
    import zarr

    from intake_resonance.datasets.open import open_run_dataset
    from intake_resonance.faces.facade import Catalog

    group = f"runs/{data.image_run}/detector_image"
    arr = zarr.open_array(data.zarr, path=group, mode="r")
    n = arr.shape[0]
    ds = open_run_dataset(data.db, data.image_run)
    cat = Catalog(data.db)
    seq = cat[data.image_run].images()
    # The lazy objects (Dataset, LazyImageSequence, zarr array) are made once:
    # these rows time reading frames, not opening things.
    floor_all = best(lambda: arr[:], repeat)
    t_ds_all = best(lambda: ds.detector_image.values, repeat)
    t_fc_all = best(lambda: seq[:], repeat)
    k = n // 2 + 3
    floor_one = best(lambda: arr[k], 4 * repeat)
    t_ds_one = best(lambda: ds.detector_image[k].values, 4 * repeat)
    t_fc_one = best(lambda: seq[k], 4 * repeat)
    # xarray's own lazy arrays (the engine without chunks=): no dask graph per read.
    lazy = xr.open_dataset(data.db, engine="resonance", group=data.image_run)
    t_lazy_one = best(lambda: lazy.detector_image[k].values, 4 * repeat)
    lazy.close()
    cat.close()
    what = f"{n} frames {arr.shape[1]}x{arr.shape[2]} {arr.dtype}"
    return [
        _ratio_row(f"all {what}: ds.detector_image.values", t_ds_all, floor_all, 1.0),
        _ratio_row(f"all {what}: facade images()[:]", t_fc_all, floor_all, 1.0),
        _ratio_row("one frame: ds.detector_image[k].values", t_ds_one, floor_one, 1.2),
        _ratio_row("one frame: facade images()[k]", t_fc_one, floor_one, 1.2),
        _ratio_row('one frame: xr.open_dataset(engine="resonance") without chunks, [k].values', t_lazy_one, floor_one, 1.2),
    ]


def open_rows(data: generate.BenchData, repeat: int, t_table: float) -> list[Row]:
    from intake_resonance.beamtime.format import Database
    from intake_resonance.datasets.open import open_run_dataset

    # From the path, as run.to_dask() does: includes opening and checking the database.
    t_img = best(lambda: open_run_dataset(data.db, data.image_run), 4 * repeat)
    db = Database(data.db)
    t_scalar = best(lambda: open_run_dataset(db, data.scalar_run), repeat)
    return [
        _abs_row("open image run as Dataset from path (200-row table, frames untouched)", t_img, 10),
        _abs_row("open 100k-event run as Dataset minus its Run.table() time", t_scalar - t_table, 10),
    ]


def catalog_rows(data: generate.BenchData, repeat: int) -> list[Row]:
    from intake_resonance.faces.intake_drivers import BeamtimeCatalog

    uri = Path(data.db).resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    floor = best(lambda: conn.execute("SELECT * FROM runs ORDER BY time_start, uid").fetchall(), repeat)
    conn.close()
    n = len(list(BeamtimeCatalog(data.db)))
    t_list = best(lambda: list(BeamtimeCatalog(data.db)), repeat)
    from intake_resonance.datasets.runs_table import build_runs_frame

    cat = BeamtimeCatalog(data.db)
    t_df = best(cat.to_dataframe, repeat)
    t_first = best(lambda: build_runs_frame(cat.db, None, "primary"), repeat)
    return [
        _abs_row(f"list {n} runs: list(BeamtimeCatalog(path))", t_list, 50, floor),
        _abs_row(f"{n} runs as DataFrame: cat.to_dataframe() (cached per beamtime state)", t_df, 30, floor),
        Row(f"{n} runs as DataFrame, first read (nothing cached): runs and counts", t_first, floor, "-", None),
    ]


# Run in a fresh interpreter so the peak belongs to one read alone.
_PEAK_SCRIPT = r"""
import gc, json, resource, sys

def status(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return None

face, db, uid, warm = sys.argv[1:5]
if face == "dataset":
    from intake_resonance.datasets.open import open_run_dataset

    def read(u):
        return open_run_dataset(db, u)

    def size(ds):
        return sum(v.nbytes for v in ds.variables.values())
else:
    from intake_resonance.faces.facade import Catalog

    cat = Catalog(db)

    def read(u):
        return cat[u].table()

    def size(df):
        return int(df.memory_usage(index=False, deep=True).sum())

size(read(warm))  # imports, caches, allocator pools, SQLite's page cache
gc.collect()
import tracemalloc
try:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # the peak (VmHWM) starts again from the current RSS
    how = "VmHWM"
except OSError:
    how = "ru_maxrss"
base = status("VmRSS")
tracemalloc.start()
out = read(uid)
traced = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
peak = status("VmHWM") if how == "VmHWM" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"base": base, "peak": peak, "result": size(out), "traced": traced, "how": how}))
"""


def peak_rows(data: generate.BenchData) -> list[Row]:
    """Peak memory beyond the result while reading a run's scalar table (10k, 100k, 1M events), each in its own process.

    The process reads the run once (imports, caches, allocator pools, SQLite's
    page cache), then again with the peak reset: what the second read needs
    beyond its result, by the kernel (``VmHWM``) and by ``tracemalloc``
    (Python and NumPy allocations only), the larger of the two counted.
    """
    import subprocess

    rows = []
    runs = (
        (data.long_db, data.mid_run, data.params["mid_events"]),
        (data.db, data.scalar_run, data.params["n_events"]),
        (data.long_db, data.long_run, data.params["long_events"]),
    )
    for db, uid, n in runs:
        for face, what in (("dataset", "open_run_dataset"), ("facade", "facade Run.table()")):
            out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, face, db, uid, uid], check=True, capture_output=True, text=True)
            got = json.loads(out.stdout.strip().splitlines()[-1])
            rss = (got["peak"] - got["base"]) / got["result"]
            traced = got["traced"] / got["result"] - 1  # tracemalloc's peak includes the result
            extra = max(rss, traced)
            size = f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}M"
            rows.append(
                Row(
                    f"peak memory beyond the result, {size} events x 12 fields ({got['result'] / 2**20:.1f} MiB): {what} "
                    f"(RSS {rss:.2f}x, tracemalloc {traced:.2f}x)",
                    extra, None, "<= 3x result", extra <= 3, "x",
                )
            )
    return rows


def show_row(data: generate.BenchData, repeat: int) -> Row:
    """``intake-resonance show`` of the 1M-event run, in process (no interpreter start-up)."""
    from click.testing import CliRunner

    from intake_resonance.tools.cli import cli

    runner = CliRunner()
    args = ["show", data.long_db, data.long_run]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    t = best(lambda: runner.invoke(cli, args), repeat)
    n = data.params["long_events"]
    return _abs_row(f"show of a {n // 1_000_000}M-event run (fields, dtypes, units; descriptors + first events)", t, 50)


def _fetch_floor(data: generate.BenchData, uids: list[str], repeat: int) -> float:
    """The same ``(seq_num, time, data)`` rows, run by run, fetched by bare sqlite3: what stacking cannot go below.

    The faster of one query for all the runs and one query per run.
    """
    uri = Path(data.long_db).resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    one = (
        "SELECT e.seq_num, e.time, e.data FROM json_each(?) j CROSS JOIN streams s "
        "ON s.run_uid = j.value AND s.name = 'primary' CROSS JOIN events e ON e.stream_uid = s.uid"
    )
    each = (
        "SELECT e.seq_num, e.time, e.data FROM events e JOIN streams s ON s.uid = e.stream_uid "
        "WHERE s.run_uid = ? AND s.name = ? ORDER BY e.seq_num"
    )
    param = json.dumps(uids)
    floor = min(
        best(lambda: conn.execute(one, (param,)).fetchall(), repeat),
        best(lambda: [conn.execute(each, (u, "primary")).fetchall() for u in uids], repeat),
    )
    conn.close()
    return floor


def stack_rows(data: generate.BenchData, repeat: int) -> list[Row]:
    """Stack 100 and 1 000 NEXAFS runs (what ``cat.stack`` does) against fetching their rows; linearity; the events table."""
    from intake_resonance.beamtime.format import Database
    from intake_resonance.datasets.many import events_frame, stack_many

    db = Database(data.long_db)
    k = data.params["nexafs"][1]
    rows, per_run = [], {}
    for n in (100, len(data.nexafs_runs)):
        uids = data.nexafs_runs[:n]
        # The 100-run reads are short: more repetitions, so a busy core does not decide the minimum.
        times = 3 * repeat if n <= 100 else repeat
        floor = _fetch_floor(data, uids, times)
        t = best(lambda u=uids: stack_many(db, u), times)
        per_run[n] = t / n
        rows.append(_ratio_row(f"stack {n} NEXAFS runs ({k} events x 12 fields each): cat.stack (stack_many)", t, floor, 2.0))
        if n > 100:
            t_ev = best(lambda u=uids: events_frame(db, u), times)
            rows.append(_ratio_row(f"events table of {n} NEXAFS runs: cat.events() (one DataFrame)", t_ev, floor, 2.0))
    big = len(data.nexafs_runs)
    lin = per_run[big] / per_run[100]
    rows.insert(
        2, Row(f"stacking cost per run, {big} runs / 100 runs (linear: 1x)", lin, None, "<= 1.25x", lin <= 1.25, "r")
    )
    db.close()
    return rows


_OPEN_UNRELATED = """
import sys, time
t = time.perf_counter()
import xarray as xr
with xr.open_dataset(sys.argv[1]{engine}) as ds:
    ds.load()
print(time.perf_counter() - t)
"""


def entrypoint_row(data: generate.BenchData, repeat: int) -> Row:
    """Another xarray user's first open of an unrelated netCDF file, engine guessed vs named, each in a fresh interpreter.

    xarray imports every installed engine's entry point to guess: ours must
    cost that user nothing (the floor is the same call with the engine named).
    """
    import subprocess

    import numpy
    import xarray

    nc = Path(data.db).with_name("unrelated.nc")
    if not nc.exists():
        xarray.Dataset({"a": ("x", numpy.arange(1000.0))}).to_netcdf(nc, engine="h5netcdf")

    def once(engine: str) -> float:
        code = _OPEN_UNRELATED.format(engine=engine)
        out = subprocess.run([sys.executable, "-c", code, str(nc)], capture_output=True, text=True, check=True)
        return float(out.stdout.strip())

    guessed, named = [], []
    for _ in range(repeat):  # interleaved: both see the same machine state
        guessed.append(once(""))
        named.append(once(', engine="h5netcdf"'))
    return _ratio_row("xr.open_dataset(unrelated .nc), engine guessed (fresh interpreter)", min(guessed), min(named), 1.1)


def memory_row(data: generate.BenchData) -> Row:
    from intake_resonance.datasets.open import open_run_dataset

    uids = data.small_runs[:900]

    def opens(k: int) -> None:
        # 900 different small runs and 100 opens of the image run (dask graph, FrameStack).
        for i in range(k):
            uid = uids[i % len(uids)] if i % 10 else data.image_run
            open_run_dataset(data.db, uid)

    opens(50)  # warm-up: imports, caches, allocator pools
    gc.collect()
    before = rss_mb()
    opens(1000)
    gc.collect()
    growth = rss_mb() - before
    return Row("1000 run opens (900 different, 100 of the image run): RSS growth", growth, None, "<= 20 MB", growth <= 20, "MB")


# ----------------------------------------------------------------------- table
def _fmt(value: float, unit: str) -> str:
    if unit == "r":
        return f"{value:.2f}x"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "x":
        return f"{value:.2f}x result"
    return f"{value * 1e3:.1f} ms" if value < 10 else f"{value:.2f} s"


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    lines = ["| work | measured | floor | ratio | target | met? |", "| --- | ---: | ---: | ---: | --- | --- |"]
    for r in rows:
        floor = "-" if r.floor is None else _fmt(r.floor, "s")
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        met = "-" if r.met is None else ("yes" if r.met else (r.note or "NO"))
        lines.append(f"| {r.work} | {_fmt(r.measured, r.unit)} | {floor} | {ratio} | {r.target} | {met} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None, description: str) -> argparse.Namespace:
    """The options every bench script takes: ``--repeat``, ``--data``, ``--markdown``."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--repeat", type=int, default=5, help="repetitions per timing (minimum is reported)")
    ap.add_argument("--data", type=Path, default=generate.DEFAULT_FOLDER, help="folder of the benchmark beamtime")
    ap.add_argument("--markdown", action="store_true", help="print only the table")
    ap.add_argument("--only", action="append", default=None, metavar="NAME", help="run only this part (repeatable)")
    return ap.parse_args(argv)


#: The parts ``--only`` can name.
PARTS = ("memory", "scalar", "open", "frames", "catalog", "show", "stack", "peak", "entrypoint")


def main(argv: list[str] | None = None) -> int:
    """Write the data if needed, run every benchmark, print the table."""
    args = parse_args(argv, __doc__.splitlines()[0])
    data = generate.ensure(args.data)
    only = set(args.only or PARTS)
    unknown = only - set(PARTS)
    if unknown:
        raise SystemExit(f"--only takes {', '.join(PARTS)}; not {', '.join(sorted(unknown))}")
    rows: list[Row] = []
    # Memory first, before the big reads have grown the heap.
    mem = memory_row(data) if "memory" in only else None
    t_table = None
    if "scalar" in only or "open" in only:
        scalar, t_table = scalar_rows(data, args.repeat)
        rows += scalar if "scalar" in only else []
    if "open" in only and t_table is not None:
        rows += open_rows(data, args.repeat, t_table)
    if "frames" in only:
        rows += frame_rows(data, args.repeat)
    if "catalog" in only:
        rows += catalog_rows(data, args.repeat)
    if "show" in only:
        rows.append(show_row(data, args.repeat))
    if "stack" in only:
        rows += stack_rows(data, args.repeat)
    if "peak" in only:
        rows += peak_rows(data)
    if "entrypoint" in only:
        rows.append(entrypoint_row(data, args.repeat))
    if mem is not None:
        rows.append(mem)
    report(rows, f"minimum of {args.repeat} runs after one warm-up (one-frame and open rows: {4 * args.repeat})", args.markdown)
    return 0


def report(rows: list[Row], timings: str, markdown: bool) -> None:
    """Print the table; unless ``markdown``, with the machine, how timings were taken and the targets missed."""
    if not markdown:
        print(f"machine: {machine()}")
        print(f"timings: {timings}")
        print()
    print(table(rows))
    missed = [r.work for r in rows if r.met is False]
    if not markdown:
        print()
        print("all targets met" if not missed else f"targets missed: {len(missed)} of {sum(r.met is not None for r in rows)}")


if __name__ == "__main__":
    sys.exit(main())
