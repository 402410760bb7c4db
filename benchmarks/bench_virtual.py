"""Virtual Zarr: frames read through an Icechunk repository written by virtualize, against our engine.

Run with ``make bench`` (after ``benchmarks/run.py``) or
``.venv/bin/python benchmarks/bench_virtual.py``. Uses the benchmark beamtime
of ``generate.py`` (its run of 200 frames of 1024 x 1024 int32), writes that
run into a repository in a temporary folder and prints rows like
``run.py``: the floor of each read row is the same read through our engine
(``open_run_dataset``), so the ratio is what Icechunk and plain Zarr cost or
save against it. Then the repository's size per frame referenced.

Options: ``--repeat N`` (default 5), ``--markdown`` (print only the table).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generate  # noqa: E402  (the script's own folder)
from run import Row, best, parse_args, report  # noqa: E402


def folder_bytes(folder: Path) -> int:
    """Bytes of every file under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def virtual_rows(data: generate.BenchData, repo: Path, repeat: int) -> tuple[list[Row], dict[str, float]]:
    """Writing the image run, opening it and reading its frames, virtual against our engine."""
    import numpy as np
    import xarray as xr

    from intake_resonance import open_run_dataset, virtualize
    from intake_resonance.virtual import open_virtual_session

    uid = data.image_run
    report_ = virtualize(data.db, repo, runs=[uid])
    t_write = best(lambda: virtualize(data.db, Path(tempfile.mkdtemp(dir=repo.parent)) / "r", runs=[uid]), max(1, repeat // 2))
    session = open_virtual_session(repo)
    group = f"{uid}/primary"

    def open_virtual(chunks: object = {}) -> xr.Dataset:  # noqa: B006 - xarray's own default
        # cache=False: without dask, xarray would otherwise keep the first full read in memory.
        return xr.open_dataset(session.store, engine="zarr", group=group, consolidated=False, zarr_format=3, chunks=chunks, cache=False)

    ours = open_run_dataset(data.db, uid)
    virt = open_virtual()
    lazy = open_virtual(None)
    n = ours.sizes["time"]
    k = n // 2 + 3
    assert np.array_equal(virt.detector_image[k].values, ours.detector_image[k].values)
    t_open_ours = best(lambda: open_run_dataset(data.db, uid), repeat)
    t_open_virt = best(open_virtual, repeat)
    t_one_ours = best(lambda: ours.detector_image[k].values, 4 * repeat)
    t_one_virt = best(lambda: virt.detector_image[k].values, 4 * repeat)
    t_one_lazy = best(lambda: lazy.detector_image[k].values, 4 * repeat)
    t_all_ours = best(lambda: ours.detector_image.values, repeat)
    t_all_virt = best(lambda: virt.detector_image.values, repeat)
    t_all_lazy = best(lambda: lazy.detector_image.values, repeat)
    rows = [
        Row(f"virtualize one run of {n} frames 1024x1024 int32 (new repository)", t_write, None, "-", None),
        Row("open the run: xr.open_zarr(icechunk session, group) vs open_run_dataset", t_open_virt, t_open_ours, "-", None),
        Row("one frame, dask (one chunk per frame): [k].values vs our engine", t_one_virt, t_one_ours, "-", None),
        Row("one frame, chunks=None (xarray's lazy array, no dask): [k].values vs our engine", t_one_lazy, t_one_ours, "-", None),
        Row(f"all {n} frames, dask: .values vs our engine", t_all_virt, t_all_ours, "-", None),
        Row(f"all {n} frames, chunks=None: .values vs our engine", t_all_lazy, t_all_ours, "-", None),
    ]
    size = folder_bytes(repo)
    frame_bytes = ours.detector_image.nbytes / n
    sizes = {"frames": float(report_.chunks), "repo_bytes": float(size), "per_frame": size / report_.chunks, "frame_bytes": frame_bytes}
    return rows, sizes


def main(argv: list[str] | None = None) -> int:
    """Write the data if needed, run the virtual-Zarr benchmarks, print the table and the repository's size."""
    args = parse_args(argv, __doc__.splitlines()[0])
    try:
        import icechunk
        import virtualizarr  # noqa: F401
    except ImportError:
        print("virtualizarr/icechunk are not installed (pip install 'intake-resonance[virtual]'); no virtual figures")
        return 0
    icechunk.set_logs_filter("error")
    data = generate.ensure(args.data)
    with tempfile.TemporaryDirectory(prefix="bench-virtual-") as tmp:
        rows, sizes = virtual_rows(data, Path(tmp) / "bench.icechunk", args.repeat)
    report(rows, f"minimum of {args.repeat} runs after one warm-up (one-frame rows: {4 * args.repeat}); floor: our engine", args.markdown)
    print()
    print(
        f"repository: {sizes['repo_bytes'] / 1024:.1f} KiB for {sizes['frames']:.0f} frames referenced: "
        f"{sizes['per_frame']:.0f} bytes per frame ({sizes['per_frame'] / sizes['frame_bytes']:.2e} of a frame's "
        f"{sizes['frame_bytes'] / 2**20:.0f} MiB), scalars and metadata included"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
