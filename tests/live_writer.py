"""A beamline-like writer run in another process (multiprocessing spawn) by the live-beamtime tests.

Kept apart from the test modules so the spawned process imports only what it
needs. Frames hold their event's ``seq_num`` in every pixel, so a reader can
tell a frame that belongs to the wrong event.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from intake_resonance.tools.writer import BeamtimeWriter

T0 = 1_772_700_000.0
KEYS = {
    "energy_position": {"dtype": "number", "units": "eV", "source": "motor"},
    "detector_image": {"dtype": "int32", "source": "detector", "external": True, "shape": [6, 5]},
}


def write_live(path: str, journal_mode: str | None, seconds: float, queue: Any) -> None:
    """Write runs for ``seconds`` with the beamline's commit timing; report to ``queue``.

    Each run: a committed run row, a ``primary`` stream of 3-6 events with a
    frame each, then a ``baseline`` stream (whose opening commits the primary
    events and their frames) with one event, then close. Reports, per run
    uid, how many events it wrote in each stream, and the longest time one
    committing call took (the writer's wait for readers to let go).
    """
    w = BeamtimeWriter(Path(path), journal_mode=journal_mode).open()
    written: dict[str, dict[str, int]] = {}
    longest = 0.0

    def timed(fn: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal longest
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        longest = max(longest, time.perf_counter() - t)
        return out

    queue.put("started")
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        t0 = T0 + 100 * i
        uid = timed(w.open_run, "rsoxs", sample="PS", time=t0)
        timed(w.open_stream, "primary", KEYS, time=t0)
        n = 3 + i % 4
        for seq in range(1, n + 1):
            ev = w.write_event({"energy_position": 280.0 + seq}, time=t0 + seq)
            w.write_image(ev, "detector_image", np.full((6, 5), seq, np.int32))
            time.sleep(0.01)  # an exposure
        written[uid] = {"primary": n}
        timed(w.open_stream, "baseline", {"beam_current": {"dtype": "number"}}, time=t0 + n + 1)
        w.write_event({"beam_current": 500.0}, time=t0 + n + 2)
        time.sleep(0.02)
        written[uid]["baseline"] = 1
        timed(w.close_run, "success", time=t0 + n + 3)
        i += 1
    w.close()
    queue.put({"written": written, "longest_commit": longest})
