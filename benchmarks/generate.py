"""Write the field-sized benchmark beamtime into ``bench-data/`` (once).

One beamtime, ``bench-data/bench.db`` + ``bench.zarr``, written by the
project's own :class:`~intake_resonance.tools.writer.BeamtimeWriter`:

- a ``scan`` run of 100 000 events x 12 scalar fields (the beamline's field
  names), written with ``write_events`` (same rows as ``write_event``);
- an ``rsoxs`` run of 200 frames of 1024 x 1024 ``int32``: Poisson noise
  around a scattering ring, so Zarr's default codec has real work to do;
- small runs (a stream and a few events each) up to 10 000 runs in all.

A second beamtime, ``bench-data/long.db``, holds what a long beamtime
looks like to the scalar readers:

- a ``scan`` run of 1 000 000 events x the same 12 fields (peak memory);
- a ``scan`` run of 10 000 events x the same 12 fields (peak memory of a short run);
- 1 000 ``nexafs`` runs of 500 events x 12 fields each (stacking runs).

A marker file holding the parameters and uids is written last: when it is
there and its parameters match, the data is reused, so a repeated
``make bench`` starts at once. Nothing here is used by the tests.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from intake_resonance.tools.writer import BeamtimeWriter

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FOLDER = ROOT / "bench-data"

#: Bump when the content changes, so old data is rewritten.
VERSION = 2
N_EVENTS = 100_000
N_FRAMES = 200
FRAME_SHAPE = (1024, 1024)
N_RUNS = 10_000
LONG_EVENTS = 1_000_000
N_NEXAFS = 1000
MID_EVENTS = 10_000
NEXAFS_EVENTS = 500
T0 = 1_772_700_000.0  # 2026-03-05

SCALAR_KEYS = {
    "energy_position": {"dtype": "number", "units": "eV", "source": "motor"},
    "polarization_position": {"dtype": "number", "units": "deg", "source": "motor"},
    "sam_x_position": {"dtype": "number", "units": "mm", "source": "motor"},
    "sam_y_position": {"dtype": "number", "units": "mm", "source": "motor"},
    "sam_z_position": {"dtype": "number", "units": "mm", "source": "motor"},
    "sam_th_position": {"dtype": "number", "units": "deg", "source": "motor"},
    "det_th_position": {"dtype": "number", "units": "deg", "source": "motor"},
    "i0": {"dtype": "number", "units": "V", "source": "ai"},
    "beam_current": {"dtype": "number", "units": "mA", "source": "ai"},
    "photodiode": {"dtype": "number", "units": "V", "source": "ai"},
    "exposure": {"dtype": "number", "units": "s", "source": "plan"},
    "hos": {"dtype": "number", "units": "mm", "source": "motor"},
}
IMAGE_KEYS = {
    "energy_position": SCALAR_KEYS["energy_position"],
    "i0": SCALAR_KEYS["i0"],
    "exposure": SCALAR_KEYS["exposure"],
    "detector_image": {"dtype": "int32", "source": "detector", "external": True, "shape": list(FRAME_SHAPE)},
}


@dataclass(frozen=True)
class BenchData:
    """Where the benchmark beamtime is and which runs are which."""

    db: str
    scalar_run: str
    image_run: str
    small_runs: list[str]
    params: dict
    long_run: str = ""
    nexafs_runs: list[str] = field(default_factory=list)
    mid_run: str = ""

    @property
    def long_db(self) -> str:
        """str: the long beamtime (1M-event run, 1 000 NEXAFS runs, a 10k-event run) beside ``db``."""
        return str(Path(self.db).with_name("long.db"))

    @property
    def zarr(self) -> str:
        """str: the ``.zarr`` store beside the database."""
        return str(Path(self.db).with_suffix(".zarr"))


def _params() -> dict:
    return {
        "version": VERSION,
        "n_events": N_EVENTS,
        "n_frames": N_FRAMES,
        "frame_shape": list(FRAME_SHAPE),
        "n_runs": N_RUNS,
        "long_events": LONG_EVENTS,
        "nexafs": [N_NEXAFS, NEXAFS_EVENTS],
        "mid_events": MID_EVENTS,
    }


def _scalar_events(rng: np.random.Generator, n: int) -> list[dict]:
    # Motor readbacks at their encoder resolution, analog inputs with noise:
    # the numbers a beamline writes (many digits, a few repeated values).
    energy = np.round(np.tile(np.linspace(270.0, 340.0, 1000), n // 1000 + 1)[:n] + rng.normal(0, 0.002, n), 4)
    cols = {
        "energy_position": energy,
        "polarization_position": np.where(np.arange(n) % 2000 < 1000, 0.0, 90.0),
        "sam_x_position": np.round(1.25 + rng.normal(0, 0.0005, n), 4),
        "sam_y_position": np.round(-3.5 + rng.normal(0, 0.0005, n), 4),
        "sam_z_position": np.round(0.1 + rng.normal(0, 0.0005, n), 4),
        "sam_th_position": np.round(rng.normal(0, 0.01, n), 3),
        "det_th_position": np.round(rng.normal(0, 0.01, n), 3),
        "i0": rng.normal(1.2, 0.05, n),
        "beam_current": 500.0 + rng.normal(0, 0.3, n),
        "photodiode": rng.normal(0.4, 0.02, n),
        "exposure": np.full(n, 0.1),
        "hos": np.round(rng.normal(0, 0.001, n), 4),
    }
    names = list(cols)
    # Python floats: orjson writes them as the beamline's json.dumps would.
    rows = zip(*(cols[k].tolist() for k in names))
    return [dict(zip(names, r)) for r in rows]


def _ring_frames(rng: np.random.Generator, n: int, shape: tuple[int, int]):  # noqa: ANN202
    """Yield ``n`` int32 frames: Poisson counts around a ring that shifts with energy."""
    y, x = np.indices(shape, dtype=np.float32)
    r = np.hypot(x - shape[1] * 0.52, y - shape[0] * 0.48)
    background = 40.0 * np.exp(-r / 300.0) + 2.0
    beamstop = r < 30
    for i in range(n):
        r0 = 180.0 + 60.0 * np.sin(i / n * np.pi)
        lam = background + 400.0 * np.exp(-((r - r0) ** 2) / (2 * 15.0**2))
        frame = rng.poisson(lam).astype(np.int32)
        frame[beamstop] = 0
        yield frame


def generate(folder: Path) -> BenchData:
    """Write the benchmark beamtime into ``folder`` (replacing what is there)."""
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "bench.db"
    db.unlink(missing_ok=True)
    shutil.rmtree(db.with_suffix(".zarr"), ignore_errors=True)
    rng = np.random.default_rng(0)
    t = T0
    small: list[str] = []
    with BeamtimeWriter(db, seed=0) as w:
        # Each run commits on open and close; without fsync per commit 10 000 runs take seconds.
        w.connection.execute("PRAGMA synchronous = OFF")
        samples = ["PS", "PMMA", "P3HT", "P3HT:PCBM", "PTB7", "Si3N4"]
        n_small = N_RUNS - 2
        half = n_small // 2
        for k in range(n_small):
            if k == half:
                # The two big runs sit in the middle of the beamtime, as they would.
                scalar_run = w.open_run("scan", sample="PS", time=t, operator="bench", metadata={"edge": "C"})
                w.open_stream("primary", SCALAR_KEYS, time=t)
                events = _scalar_events(rng, N_EVENTS)
                w.write_events(events, time=(t + 1 + 0.05 * np.arange(N_EVENTS)).tolist())
                t += 1 + 0.05 * N_EVENTS
                w.close_run("success", time=t)
                image_run = w.open_run("rsoxs", sample="P3HT", time=t, operator="bench", metadata={"edge": "C"})
                w.open_stream("primary", IMAGE_KEYS, time=t)
                for i, frame in enumerate(_ring_frames(rng, N_FRAMES, FRAME_SHAPE)):
                    ev = w.write_event(
                        {"energy_position": 270.0 + 0.35 * i, "i0": 1.2, "exposure": 0.1}, time=t + 1 + i
                    )
                    w.write_image(ev, "detector_image", frame)
                t += 2 + N_FRAMES
                w.close_run("success", time=t)
            uid = w.open_run(
                ("nexafs", "en_scan", "scan", "grid_scan")[k % 4],
                sample=samples[k % len(samples)],
                time=t,
                operator=("alice", "bob", None)[k % 3],
                metadata={"edge": "C", "index": k},
            )
            w.open_stream("primary", {k2: SCALAR_KEYS[k2] for k2 in ("energy_position", "i0", "photodiode")}, time=t)
            w.write_events(
                [{"energy_position": 280.0 + j, "i0": 1.2, "photodiode": 0.4 + 0.01 * j} for j in range(5)],
                time=[t + 1 + j for j in range(5)],
            )
            t += 10
            w.close_run(("success", "success", "success", "aborted")[k % 4], time=t)
            small.append(uid)
    long_run, nexafs, mid_run = _generate_long(folder / "long.db", rng)
    data = BenchData(str(db), scalar_run, image_run, small, _params(), long_run, nexafs, mid_run)
    # The marker is written last: an interrupted run leaves no marker and is redone.
    (folder / "bench.complete.json").write_text(json.dumps(asdict(data)))
    return data


def _generate_long(db: Path, rng: np.random.Generator) -> tuple[str, list[str], str]:
    """Write ``long.db``: one 1M-event run, 1 000 NEXAFS runs and one 10k-event run; return their uids."""
    db.unlink(missing_ok=True)
    shutil.rmtree(db.with_suffix(".zarr"), ignore_errors=True)
    t = T0
    nexafs: list[str] = []
    with BeamtimeWriter(db, seed=1) as w:
        w.connection.execute("PRAGMA synchronous = OFF")
        long_run = w.open_run("scan", sample="PS", time=t, operator="bench", metadata={"edge": "C"})
        w.open_stream("primary", SCALAR_KEYS, time=t)
        step = 100_000  # in slices: a million event dicts at once would take gigabytes
        for start in range(0, LONG_EVENTS, step):
            k = min(step, LONG_EVENTS - start)
            w.write_events(_scalar_events(rng, k), time=(t + 1 + 0.05 * np.arange(start, start + k)).tolist())
        t += 1 + 0.05 * LONG_EVENTS
        w.close_run("success", time=t)
        for k in range(N_NEXAFS):
            nexafs.append(w.open_run("nexafs", sample=("PS", "PMMA")[k % 2], time=t, operator="bench", metadata={"edge": "C"}))
            w.open_stream("primary", SCALAR_KEYS, time=t)
            w.write_events(_scalar_events(rng, NEXAFS_EVENTS), time=(t + 1 + np.arange(NEXAFS_EVENTS)).tolist())
            t += 2 + NEXAFS_EVENTS
            w.close_run("success", time=t)
        mid_run = w.open_run("scan", sample="PS", time=t, operator="bench", metadata={"edge": "C"})
        w.open_stream("primary", SCALAR_KEYS, time=t)
        w.write_events(_scalar_events(rng, MID_EVENTS), time=(t + 1 + 0.05 * np.arange(MID_EVENTS)).tolist())
        t += 1 + 0.05 * MID_EVENTS
        w.close_run("success", time=t)
    return long_run, nexafs, mid_run


def ensure(folder: Path = DEFAULT_FOLDER, *, verbose: bool = True) -> BenchData:
    """The benchmark beamtime, written only if missing or from another version.

    Parameters
    ----------
    folder : Path
        Where ``bench.db``/``bench.zarr`` live (default ``bench-data/``).
    verbose : bool
        Say on stderr when writing (it takes a minute or so).

    Returns
    -------
    BenchData
    """
    marker = folder / "bench.complete.json"
    if marker.is_file():
        saved = json.loads(marker.read_text())
        if saved.get("params") == _params() and Path(saved["db"]).is_file():
            return BenchData(**saved)
    if verbose:
        print(f"writing the benchmark beamtime into {folder} (once) ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    data = generate(folder)
    if verbose:
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20
        print(f"  done in {time.perf_counter() - t0:.0f} s, {size:.0f} MiB", file=sys.stderr, flush=True)
    return data


def _check(data: BenchData) -> None:
    conn = sqlite3.connect(Path(data.db).resolve().as_uri() + "?mode=ro", uri=True)
    (n_runs,) = conn.execute("SELECT count(*) FROM runs").fetchone()
    conn.close()
    assert n_runs == N_RUNS, n_runs


if __name__ == "__main__":
    d = ensure(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_FOLDER)
    _check(d)
    print(d.db)
