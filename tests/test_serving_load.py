"""A real server under load: 16 clients x 50 mixed requests over 127.0.0.1, every answer checked."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import IMAGE_KEYS, T0, write_nexafs

pytest.importorskip("tiled.server")
httpx = pytest.importorskip("httpx")

from served import running_server  # noqa: E402

from intake_resonance.tools.writer import BeamtimeWriter  # noqa: E402

CLIENTS, REQUESTS = 16, 50
FRAMES, SHAPE = 40, (64, 48)
#: Growth of the server's peak RSS allowed under the load (its frames are 12 KiB each).
RSS_GROWTH_LIMIT = 150 * 2**20


def _rss(pid: int, field: str) -> int:
    """A memory figure of process ``pid`` from /proc (bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("load") / "bt.db"
    rng = np.random.default_rng(22)
    frames = rng.integers(0, 60_000, size=(FRAMES, *SHAPE), dtype=np.int32)
    energies = 280.0 + np.arange(FRAMES) * 0.25
    with BeamtimeWriter(path, seed=22) as w:
        nexafs = [write_nexafs(w, T0 + 10 * i)[0] for i in range(6)]
        uid = w.open_run("rsoxs", sample="PS", time=T0 + 100)
        w.open_stream("primary", {**IMAGE_KEYS, "detector_image": {**IMAGE_KEYS["detector_image"], "shape": list(SHAPE)}},
                      time=T0 + 100)
        for i in range(FRAMES):
            ev = w.write_event({"energy_position": float(energies[i]), "exposure": 0.1}, time=T0 + 101 + i)
            w.write_image(ev, "detector_image", frames[i])
        w.close_run("success", time=T0 + 200)
    return {"path": path, "rsoxs": uid, "nexafs": nexafs, "frames": frames, "energies": energies}


def test_sixteen_clients_fifty_requests_each(written: dict[str, Any]) -> None:
    key = f"{secrets.token_urlsafe(24)}-_"
    uid, frames = written["rsoxs"], written["frames"]
    all_uids = [*written["nexafs"], uid]
    base = f"{uid}/primary"
    octet = {"Accept": "application/octet-stream"}
    statuses: Counter[int] = Counter()
    wrong: list[str] = []
    lock = threading.Lock()

    def one(http: Any, i: int) -> None:
        kind = i % 4
        if kind == 0:  # list
            r = http.get("/api/v1/search/", params={"fields": "", "sort": "_", "page[limit]": 100})
            ok = r.status_code == 200 and [d["id"] for d in r.json()["data"]] == all_uids
        elif kind == 1:  # search
            r = http.get("/api/v1/search/", params={"fields": "", "filter[eq][condition][key]": "plan_name",
                                                    "filter[eq][condition][value]": '"nexafs"'})
            ok = r.status_code == 200 and [d["id"] for d in r.json()["data"]] == written["nexafs"]
        elif kind == 2:  # one frame
            k = (i * 7) % FRAMES
            r = http.get(f"/api/v1/array/block/{base}/detector_image", params={"block": f"{k},0,0"}, headers=octet)
            ok = r.status_code == 200 and np.array_equal(np.frombuffer(r.content, np.int32).reshape(1, *SHAPE), frames[k:k + 1])
        else:  # a column
            r = http.get(f"/api/v1/array/full/{base}/energy_position", headers=octet)
            ok = r.status_code == 200 and np.array_equal(np.frombuffer(r.content, np.float64), written["energies"])
        with lock:
            statuses[r.status_code] += 1
            if not ok:
                wrong.append(f"{kind}: {r.status_code} {r.text[:120]}")

    def client(url: str, n: int) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Apikey {key}"}, timeout=60) as http:
            for i in range(REQUESTS):
                one(http, i + n)

    log: list[str] = []
    with running_server(written["path"], log, env={**os.environ, "TILED_SINGLE_USER_API_KEY": key}) as (url, proc):
        client(url, 0)  # warm up: every kind of node built once
        before = _rss(proc.pid, "VmRSS")
        threads = [threading.Thread(target=client, args=(url, n)) for n in range(CLIENTS)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        peak = _rss(proc.pid, "VmHWM")
        assert httpx.get(f"{url}/api/v1/metadata/", timeout=5).status_code == 401  # still guarded after the load
    err = "".join(log)
    assert sum(statuses.values()) == (CLIENTS + 1) * REQUESTS
    assert set(statuses) == {200}, statuses
    assert wrong == []
    assert peak - before < RSS_GROWTH_LIMIT, (before, peak)
    assert "Traceback" not in err, err
    print(f"{CLIENTS * REQUESTS / elapsed:.0f} requests/s; RSS {before / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB")
