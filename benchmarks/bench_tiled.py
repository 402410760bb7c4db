"""Serving with tiled: the same work through tiled's in-process client, against our catalog.

Run with ``make bench`` (after ``benchmarks/run.py``) or
``.venv/bin/python benchmarks/bench_tiled.py``. Uses the benchmark beamtime
of ``generate.py`` (10 000 runs, a run of 200 frames of 1024 x 1024 int32)
and prints rows like ``run.py``; the floor of each row is the same work done
by our intake catalog in this process, so the ratio is what HTTP and tiled
add (requests go through tiled's ASGI test transport, no network).

Options: ``--repeat N`` (default 5), ``--markdown`` (print only the table).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generate  # noqa: E402  (the script's own folder)
from run import Row, _ratio_row, best, parse_args, report  # noqa: E402


def tiled_rows(data: generate.BenchData, repeat: int) -> list[Row]:
    """Listing, search and frame reads through tiled, each against the catalog doing the same."""
    import numpy as np
    from tiled.client import Context, from_context
    from tiled.queries import Eq
    from tiled.server.app import build_app

    from intake_resonance.faces.intake_drivers import BeamtimeCatalog
    from intake_resonance.faces.tiled import beamtime_tree

    cat = BeamtimeCatalog(data.db)
    n = len(list(cat))
    t_cat_list = best(lambda: list(BeamtimeCatalog(data.db)), repeat)
    t_cat_search = best(lambda: list(cat.search(plan_name="nexafs")), repeat)
    ds = cat[data.image_run].to_dask()
    k = ds.sizes["time"] // 2 + 3
    t_cat_frame = best(lambda: ds.detector_image[k].values, 4 * repeat)
    t_cat_all = best(lambda: ds.detector_image.values, repeat)

    # Our share alone: what the adapter adds to a listing request, the uid listing re-read (ttl=0).
    fresh = beamtime_tree(data.db, ttl=0)
    t_adapter = best(lambda: (len(fresh), list(fresh.keys()[300:600])), repeat)
    fresh.close()

    with Context.from_app(build_app(beamtime_tree(data.db))) as ctx:
        client = from_context(ctx)
        t_list = best(lambda: list(client), repeat)
        t_list_300 = best(lambda: list(client.keys().page_size(300)), repeat)
        t_search = best(lambda: list(client.search(Eq("plan_name", "nexafs")).keys().page_size(300)), repeat)
        frames = client[data.image_run]["primary"]["detector_image"]
        t_frame = best(lambda: frames[k], 4 * repeat)
        t_all = best(lambda: np.asarray(frames.read()), repeat)
        assert np.array_equal(frames[k], ds.detector_image[k].values)
    cat.close()
    n_frames = ds.sizes["time"]
    # HTTP rows have no target: beyond our adapter (first row) the time is tiled's
    # own per-request cost (routing, pydantic models, serialisation, transport).
    return [
        _ratio_row(f"tiled adapter alone: count + a page of 300 of {n} uids, listing re-read", t_adapter, t_cat_list, 2.0),
        Row(f"list {n} runs: list(client) (tiled's pages of 100)", t_list, t_cat_list, "-", None),
        Row(f"list {n} runs: list(client.keys().page_size(300))", t_list_300, t_cat_list, "-", None),
        Row("search plan_name (2 500 of 10 000 runs), pages of 300", t_search, t_cat_search, "-", None),
        Row("one frame: client[uid]['primary']['detector_image'][k]", t_frame, t_cat_frame, "-", None),
        Row(f"all {n_frames} frames: array client read()", t_all, t_cat_all, "-", None),
    ]


def main(argv: list[str] | None = None) -> int:
    """Write the data if needed, run the tiled benchmarks, print the table."""
    args = parse_args(argv, __doc__.splitlines()[0])
    try:
        import tiled.server  # noqa: F401
    except ImportError:
        print("tiled is not installed (pip install 'intake-resonance[tiled]'); no tiled figures")
        return 0
    data = generate.ensure(args.data)
    rows = tiled_rows(data, args.repeat)
    report(rows, f"minimum of {args.repeat} runs after one warm-up (one-frame rows: {4 * args.repeat}); floor: our catalog", args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
