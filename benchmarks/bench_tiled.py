"""Serving with tiled: the same work through tiled's in-process client, against our catalog.

Run with ``make bench`` (after ``benchmarks/run.py``) or
``.venv/bin/python benchmarks/bench_tiled.py``. Uses the benchmark beamtime
of ``generate.py`` (10 000 runs, a run of 200 frames of 1024 x 1024 int32)
and prints rows like ``run.py``; the floor of each row is the same work done
by our intake catalog in this process, so the ratio is what HTTP and tiled
add (requests go through tiled's ASGI test transport, no network).

A second part serves frames from a real server (``uvicorn`` in its own
process on 127.0.0.1, behind the API-key guard, as ``intake-resonance
serve`` does) and times one frame per request over HTTP: through our
adapter and, in the same server, through tiled's stock zarr adapter
(``tiled.adapters.zarr.ZarrArrayAdapter``) over the very same Zarr array,
against a local read of that frame; p50 and p99 of single requests, and
requests/s with several clients at once.

Options: ``--repeat N`` (default 5), ``--markdown`` (print only the table),
``--http-only`` (only the real-server part, on a beamtime of its own of
24 frames: no 10 000-run beamtime to write).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


# ------------------------------------------------------------- a real server
KEY_ENV = "TILED_SINGLE_USER_API_KEY"
HTTP_FRAMES = 24
HTTP_CLIENTS = 4


def serve_for_bench(db: str, uid: str, port: int) -> None:
    """The server process: our beamtime under ``/ours``, the run's Zarr array under ``/stock``, one app."""
    import uvicorn
    import zarr
    from tiled.adapters.mapping import MapAdapter
    from tiled.adapters.zarr import ZarrArrayAdapter
    from tiled.config import Authentication
    from tiled.server.app import build_app
    from tiled.structures.array import ArrayStructure

    from intake_resonance.beamtime.format import zarr_path_for
    from intake_resonance.faces.tiled import KeyGuard, KeyRequired, beamtime_tree

    store = zarr.storage.LocalStore(str(zarr_path_for(db)), read_only=True)
    arr = zarr.open_array(store, path=f"runs/{uid}/detector_image", mode="r")
    stock = ZarrArrayAdapter(arr, ArrayStructure.from_array(arr))
    tree = MapAdapter({"ours": beamtime_tree(db), "stock": MapAdapter({"detector_image": stock})})
    inner = secrets.token_hex(32)  # as build_server does: the guard checks the client's key, tiled sees its own
    app = build_app(tree, Authentication(single_user_api_key=inner, allow_anonymous_access=True), access_policy=KeyRequired())
    app.add_middleware(KeyGuard, key=os.environ[KEY_ENV], inner_key=inner)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


@contextmanager
def bench_server(db: str, uid: str, key: str) -> Iterator[str]:
    """Run :func:`serve_for_bench` in a process of its own; yield its URL."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, __file__, "--serve", db, uid, str(port)]
    proc = subprocess.Popen(cmd, env={**os.environ, KEY_ENV: key}, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError("the bench server stopped")
            try:
                httpx.get(f"{url}/api/v1/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the bench server did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _latencies(fn: Callable[[int], Any], n: int) -> list[float]:
    fn(0)  # warm-up
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t)
    return out


def _pct(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q))


def http_rows(db: str, uid: str, repeat: int) -> tuple[list[Row], str]:
    """One frame per request over HTTP: ours, tiled's stock zarr adapter, a local read; requests/s."""
    import httpx
    import numpy as np
    import zarr

    from intake_resonance.beamtime.format import zarr_path_for
    from intake_resonance.faces.intake_drivers import BeamtimeCatalog

    arr = zarr.open_array(zarr.storage.LocalStore(str(zarr_path_for(db)), read_only=True),
                          path=f"runs/{uid}/detector_image", mode="r")
    n_frames, dtype, shape = arr.shape[0], arr.dtype, arr.shape[1:]
    cat = BeamtimeCatalog(db)
    ds = cat[uid].to_dask()
    n = 20 * repeat
    local = _latencies(lambda i: ds.detector_image[i % n_frames].values, n)
    zarr_floor = _latencies(lambda i: arr[i % n_frames], n)
    cat.close()
    key = f"{secrets.token_urlsafe(24)}-_"
    headers = {"Authorization": f"Apikey {key}", "Accept": "application/octet-stream"}
    paths = {"ours": f"/api/v1/array/block/ours/{uid}/primary/detector_image", "stock": "/api/v1/array/block/stock/detector_image"}
    with bench_server(db, uid, key) as url, httpx.Client(base_url=url, headers=headers, timeout=60) as http:

        def get(which: str, i: int) -> np.ndarray:
            k = i % n_frames
            r = http.get(paths[which], params={"block": f"{k},0,0"})
            r.raise_for_status()
            return np.frombuffer(r.content, dtype=dtype).reshape(1, *shape)

        for which in paths:  # both answer the stored frame
            assert np.array_equal(get(which, 3)[0], arr[3])
        ours = _latencies(lambda i: get("ours", i), n)
        stock = _latencies(lambda i: get("stock", i), n)
        http.headers["Accept-Encoding"] = "identity"  # what tiled's compression of the answer costs
        plain = _latencies(lambda i: get("ours", i), n)
        del http.headers["Accept-Encoding"]

        per_client = 10 * repeat

        def client() -> None:
            with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
                for i in range(per_client):
                    c.get(paths["ours"], params={"block": f"{i % n_frames},0,0"}).raise_for_status()

        threads = [threading.Thread(target=client) for _ in range(HTTP_CLIENTS)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rps = HTTP_CLIENTS * per_client / (time.perf_counter() - t0)
    size = f"{shape[0]} x {shape[1]} {dtype}"
    p50_local = _pct(local, 50)
    rows = [
        Row(f"one frame ({size}) read locally: our Dataset, p50", p50_local, _pct(zarr_floor, 50), "-", None),
        _ratio_row("one frame over HTTP, our adapter, p50 (floor: local read)", _pct(ours, 50), p50_local, 2.0),
        Row("one frame over HTTP, our adapter, p99", _pct(ours, 99), _pct(local, 99), "-", None),
        _ratio_row("one frame over HTTP, our adapter, uncompressed answer (Accept-Encoding: identity), p50",
                   _pct(plain, 50), p50_local, 2.0),
        Row("one frame over HTTP, tiled's stock zarr adapter, p50 (floor: local read)", _pct(stock, 50), p50_local, "-", None),
        Row("one frame over HTTP, tiled's stock zarr adapter, p99", _pct(stock, 99), _pct(local, 99), "-", None),
        Row("our adapter against the stock one, p50 (floor: stock)", _pct(ours, 50), _pct(stock, 50), "-", None),
        Row(f"{HTTP_CLIENTS} clients at once, one frame per request: time per request", 1 / rps, None, "-", None),
    ]
    return rows, f"{rps:.0f} requests/s ({HTTP_CLIENTS} clients, one {size} frame each)"


def write_http_beamtime(folder: Path) -> tuple[str, str]:
    """A beamtime of one run of :data:`HTTP_FRAMES` field-sized frames (the benchmark's ring frames)."""
    import numpy as np

    from intake_resonance.tools.writer import BeamtimeWriter

    db = folder / "http.db"
    with BeamtimeWriter(db, seed=1) as w:
        uid = w.open_run("rsoxs", sample="P3HT", time=generate.T0)
        w.open_stream("primary", generate.IMAGE_KEYS, time=generate.T0)
        rng = np.random.default_rng(1)
        for i, frame in enumerate(generate._ring_frames(rng, HTTP_FRAMES, generate.FRAME_SHAPE)):
            ev = w.write_event({"energy_position": 270.0 + i, "i0": 1.2, "exposure": 0.1}, time=generate.T0 + 1 + i)
            w.write_image(ev, "detector_image", frame)
        w.close_run("success", time=generate.T0 + 100)
    return str(db), uid


def main(argv: list[str] | None = None) -> int:
    """Write the data if needed, run the tiled benchmarks, print the table."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--serve"]:
        serve_for_bench(argv[1], argv[2], int(argv[3]))
        return 0
    http_only = "--http-only" in argv
    args = parse_args([a for a in argv if a != "--http-only"], __doc__.splitlines()[0])
    try:
        import tiled.server  # noqa: F401
    except ImportError:
        print("tiled is not installed (pip install 'intake-resonance[tiled]'); no tiled figures")
        return 0
    rows: list[Row] = []
    if not http_only:
        data = generate.ensure(args.data)
        rows += tiled_rows(data, args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        db, uid = (data.db, data.image_run) if not http_only else write_http_beamtime(Path(tmp))
        more, throughput = http_rows(db, uid, args.repeat)
    rows += more
    report(rows, f"minimum of {args.repeat} runs after one warm-up (one-frame rows: {4 * args.repeat}; HTTP rows: "
           f"percentiles of {20 * args.repeat} requests); floor: our catalog, or as the row says", args.markdown)
    print(f"\nthroughput: {throughput}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
