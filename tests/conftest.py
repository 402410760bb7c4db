"""Shared fixtures: beamtimes written with the project's own writer in tmp_path."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from intake_resonance.tools.writer import BeamtimeWriter

T0 = 1_772_700_000.0  # 2026-03-05, a plausible beamtime start

NEXAFS_KEYS = {
    "energy_position": {"dtype": "number", "units": "eV", "source": "motor"},
    "i0": {"dtype": "number", "units": "V", "source": "ai"},
    "photodiode": {"dtype": "number", "units": "V", "source": "ai"},
}
BASELINE_KEYS = {
    "sam_x_position": {"dtype": "number", "units": "mm", "source": "motor"},
    "beam_current": {"dtype": "number", "units": "mA", "source": "ai"},
}
IMAGE_KEYS = {
    "energy_position": {"dtype": "number", "units": "eV", "source": "motor"},
    "exposure": {"dtype": "number", "units": "s", "source": "plan"},
    "detector_image": {"dtype": "int32", "source": "detector", "external": True, "shape": [6, 5]},
}


@dataclass
class Written:
    """What a fixture wrote, so tests compare against it."""

    path: Path
    uids: dict[str, str] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    frames: dict[str, np.ndarray] = field(default_factory=dict)
    times: dict[str, list[float]] = field(default_factory=dict)


def write_nexafs(w: BeamtimeWriter, t0: float, n: int = 8, sample: str | None = "PS") -> tuple[str, list[dict]]:
    """A NEXAFS energy scan with a baseline stream; returns uid and primary events."""
    uid = w.open_run("nexafs", sample=sample, time=t0, operator="alice", metadata={"edge": "C", "purpose": "ref"})
    w.open_stream("baseline", BASELINE_KEYS, time=t0)
    w.write_event({"sam_x_position": 1.25, "beam_current": 500.1}, time=t0 + 0.1)
    w.open_stream("primary", NEXAFS_KEYS, time=t0 + 0.2)
    events = []
    for i in range(n):
        data = {"energy_position": 280.0 + i * 0.5, "i0": 1.0 + 0.01 * i, "photodiode": 0.5 + 0.02 * i}
        w.write_event(data, time=t0 + 1 + i)
        events.append(data)
    w.close_run("success", time=t0 + 1 + n)
    return uid, events


def write_rsoxs(w: BeamtimeWriter, t0: float, n: int = 5, sample: str | None = "P3HT", seed: int = 0) -> tuple[str, list[dict], np.ndarray]:
    """An RSoXS scan with 6x5 int32 frames; returns uid, events and the frames."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 10_000, size=(n, 6, 5), dtype=np.int32)
    uid = w.open_run("rsoxs", sample=sample, time=t0, operator="bob", metadata={"edge": "C"})
    w.open_stream("primary", IMAGE_KEYS, time=t0)
    events = []
    for i in range(n):
        data = {"energy_position": 285.0 + i, "exposure": 0.1}
        ev = w.write_event(data, time=t0 + 1 + i)
        w.write_image(ev, "detector_image", frames[i])
        events.append(data)
    w.close_run("success", time=t0 + 1 + n)
    return uid, events, frames


@pytest.fixture(scope="module")
def process_client() -> Any:
    """A ``dask.distributed`` client over two worker processes, shared by a module's tests.

    Starting worker processes is the slow and load-sensitive part, so it is done
    once per module, with a generous connect timeout. Not per session: every
    cluster's scheduler takes port 8787 for its HTTP routes (even without a
    dashboard), and a second cluster alive at the same time leaks the socket
    of its failed try. The client is not made the default scheduler: tests
    send work to it explicitly, and every other test keeps dask's local
    scheduler.
    """
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "90s"}), distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster, distributed.Client(cluster, set_as_default=False) as client:
        yield client


@pytest.fixture
def beamtime(tmp_path: Path) -> Written:
    """A small beamtime: one NEXAFS run (with baseline) and one RSoXS run."""
    out = Written(tmp_path / "beamtime.db")
    with BeamtimeWriter(out.path, seed=7) as w:
        uid, ev = write_nexafs(w, T0)
        out.uids["nexafs"], out.events["nexafs"] = uid, ev
        uid, ev, fr = write_rsoxs(w, T0 + 100)
        out.uids["rsoxs"], out.events["rsoxs"], out.frames["rsoxs"] = uid, ev, fr
    return out
