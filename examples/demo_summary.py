"""Summarise the demo beamtime through intake, and plot the newest RSoXS run's mean frame.

Run by ``make demo`` after ``intake-resonance demo demo-data`` wrote the demo:

    python examples/demo_summary.py [CATALOG.yaml] [-o PNG]

It opens ``catalogs/demo.yaml`` (found beside this file, whatever the
working directory), prints the runs table, opens the newest RSoXS run
(``rsoxs`` or ``en_scan`` with frames) as an xarray Dataset, computes its
mean frame with dask, prints a short summary and saves the mean frame as a
PNG beside the demo data.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import intake
import pandas as pd

from intake_resonance.analysis.plot import save_run_plot
from intake_resonance.tools.demo import RSOXS_PLANS

HERE = Path(__file__).resolve().parent
DEFAULT_CATALOG = HERE.parent / "catalogs" / "demo.yaml"


def runs_table(bt) -> pd.DataFrame:  # noqa: ANN001 - an intake catalog
    """The runs table, shortened for a terminal: uid prefixes, start times to the second."""
    df = bt.to_dataframe()
    df["uid"] = df["uid"].str[:8]
    df["time_start"] = df["time_start"].dt.strftime("%Y-%m-%d %H:%M:%S")
    df["sample"] = df["sample"].fillna("-")
    df["exit_status"] = df["exit_status"].fillna("open")
    # events: all streams (an open run's too); stream_events, frames: what run.to_dask() holds
    return df[["uid", "plan_name", "sample", "time_start", "exit_status", "num_events", "stream_events", "frames", "operator"]]


def newest_rsoxs_uid(bt) -> str:  # noqa: ANN001 - an intake catalog
    """Uid of the newest finished run whose plan takes detector frames and that has some.

    A run still open (the demo's last) may gain frames while it is read: not a fair example.
    """
    candidates = bt.search(plan_name=list(RSOXS_PLANS), exit_status="success").to_dataframe()
    for uid in reversed(candidates["uid"].tolist()):
        ds = bt[uid].to_dask()  # lazy: no frame is read to learn the shape
        if "detector_image" in ds and ds.sizes["time"] > 0:
            return uid
    raise SystemExit("the demo beamtime has no RSoXS run with frames")


def main() -> None:
    """Print the summary and write the PNG; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("catalog", nargs="?", default=str(DEFAULT_CATALOG), help="intake YAML catalog")
    parser.add_argument("-o", "--output", default=None, help="PNG to write (default: mean_frame.png beside the data)")
    args = parser.parse_args()

    cat = intake.open_catalog(args.catalog)
    bt = cat.demo_beamtime
    print(f"catalog {args.catalog}: sources {', '.join(cat)}")
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        print(runs_table(bt).to_string(index=False))

    uid = newest_rsoxs_uid(bt)
    entry = bt[uid]
    ds = entry.to_dask()
    frames = ds.detector_image
    start = time.perf_counter()
    mean = frames.mean("time").compute()  # dask reads the frames chunk by chunk
    took = time.perf_counter() - start
    energies = ds.energy_position.values
    print(
        f"\nnewest RSoXS run {uid[:8]} ({ds.attrs['plan_name']}, {ds.attrs.get('sample_name', 'no sample')}, "
        f"{ds.attrs.get('exit_status', 'open')}): {ds.attrs['num_events']} events ({ds.sizes['time']} primary), "
        f"{entry.metadata['frames']} frames of "
        f"{frames.shape[1]}x{frames.shape[2]} {frames.dtype}, {energies.min():g}-{energies.max():g} eV, "
        f"{len(frames.chunks[0])} dask chunk(s)"
    )
    print(f"mean frame: {float(mean.mean()):.1f} counts on average, brightest pixel {float(mean.max()):.0f} "
          f"(computed in {took:.2f} s)")

    out = Path(args.output) if args.output else Path(bt.path).resolve().with_name("mean_frame.png")
    save_run_plot(ds, out, log=True)
    print(f"wrote {_shown(out)}")


def _shown(path: Path) -> str:
    """The path relative to the working directory when it lies below it (shorter to read)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    main()
