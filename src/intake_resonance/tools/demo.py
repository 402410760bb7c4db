"""A realistic demo beamtime, written with our own writer, and a summary of it.

``python -m intake_resonance.tools.demo DIR`` (what ``make demo`` runs) writes
``DIR/demo_beamtime.db`` + ``DIR/demo_beamtime.zarr``: about two days of a
carbon-edge RSoXS beamtime (NEXAFS scans, RSoXS energy scans with detector
frames, a grid scan, an aborted run and a run still open), then opens it
read-only through the package's reader and prints what it finds.

Everything is deterministic for a given ``seed``: the data come from a seeded
NumPy generator, the uids from a seeded writer and every time stamp from a
fixed epoch (2026-03-05 09:00 UTC).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time as _time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ..beamtime import records
from ..beamtime.format import Database, zarr_path_for
from ..beamtime.frames import FrameStack
from .writer import BeamtimeWriter

__all__ = [
    "DEMO_NAME",
    "EPOCH",
    "RSOXS_PLANS",
    "absorption",
    "nexafs_energies",
    "write_demo",
    "summarize",
    "main",
]

#: Stem of the demo beamtime's files (``demo_beamtime.db`` / ``.zarr``).
DEMO_NAME = "demo_beamtime"
#: Start of the demo beamtime: 2026-03-05 09:00 UTC, in epoch seconds.
EPOCH = datetime(2026, 3, 5, 9, 0, tzinfo=UTC).timestamp()
#: Plans whose primary stream carries detector frames.
RSOXS_PLANS = ("rsoxs", "en_scan")

_HOUR = 3600.0
_BASE_META = {"proposal": "ALS-12345", "edge": "C", "beamline": "11.0.1.2"}


# ------------------------------------------------------------------ descriptors
def _num(units: str, source: str) -> dict[str, Any]:
    return {"dtype": "number", "units": units, "source": source}


_ENERGY = _num("eV", "motor")
_POL = _num("deg", "motor")
_I0 = _num("V", "ai")
_NEXAFS_KEYS = {"energy_position": _ENERGY, "polarization_position": _POL, "i0": _I0, "photodiode": _num("V", "ai")}
_BASELINE_KEYS = {
    "sam_x_position": _num("mm", "motor"),
    "sam_y_position": _num("mm", "motor"),
    "sam_z_position": _num("mm", "motor"),
    "sam_th_position": _num("deg", "motor"),
    "beam_current": _num("mA", "ai"),
}
_GRID_KEYS = {
    "sam_x_position": _num("mm", "motor"),
    "sam_y_position": _num("mm", "motor"),
    "energy_position": _ENERGY,
    "i0": _I0,
    "photodiode": _num("V", "ai"),
}


def _rsoxs_keys(frame_shape: tuple[int, int]) -> dict[str, Any]:
    return {
        "energy_position": _ENERGY,
        "polarization_position": _POL,
        "exposure": _num("s", "plan"),
        "i0": _I0,
        "detector_image": {"dtype": "int32", "source": "detector", "external": True, "shape": list(frame_shape)},
    }


# ---------------------------------------------------------------------- samples
_SAMPLES: tuple[dict[str, Any], ...] = (
    {"name": "PS", "formula": "C8H8", "serial": "S-0101", "tags": ["reference", "homopolymer"],
     "beamline_pos": "A1", "extra": {"thickness_nm": 100, "substrate": "SiN 100 nm", "Mw_kDa": 190}},
    {"name": "PMMA", "formula": "C5H8O2", "serial": "S-0102", "tags": ["reference", "homopolymer"],
     "beamline_pos": "A2", "extra": {"thickness_nm": 90, "substrate": "SiN 100 nm", "Mw_kDa": 120}},
    {"name": "P3HT", "formula": "C10H14S", "serial": "S-0103", "tags": ["conjugated"],
     "beamline_pos": "A3", "extra": {"thickness_nm": 80, "regioregularity": 0.96, "anneal_C": 150}},
    {"name": "P3HT:PCBM", "formula": "C10H14S:C72H14O2", "serial": "S-0104", "tags": ["blend", "OPV"],
     "beamline_pos": "A4", "extra": {"thickness_nm": 110, "ratio": "1:0.8", "anneal_C": 150}},
)

# Stage position (x, y, z) of each slot; None is the blank membrane.
_STAGE = {None: (-5.0, 0.0, 0.2), "PS": (10.0, 4.0, 0.1), "PMMA": (20.0, 4.0, 0.1),
          "P3HT": (30.0, 4.0, 0.15), "P3HT:PCBM": (40.0, 4.0, 0.12)}

# Resonances of each sample's C 1s NEXAFS: (centre eV, width eV, height in edge steps).
# Aromatic C=C pi* near 285 eV; PMMA has none but a C=O pi* at 288.4 eV.
_RESONANCES: dict[str | None, tuple[tuple[float, float, float], ...]] = {
    None: ((285.0, 0.35, 0.08),),  # carbon contamination on the blank membrane
    "PS": ((285.2, 0.25, 3.2), (287.2, 0.4, 0.5), (293.5, 2.5, 0.9)),
    "PMMA": ((288.4, 0.3, 2.4), (293.0, 2.0, 0.8), (300.5, 3.0, 0.6)),
    "P3HT": ((285.3, 0.3, 2.6), (287.3, 0.5, 0.6), (293.5, 2.5, 0.8)),
    "P3HT:PCBM": ((284.5, 0.25, 1.6), (285.3, 0.3, 1.8), (286.1, 0.3, 0.7), (293.5, 2.5, 0.8)),
}
# Beam position on the detector (row, column) in frame sizes: never quite centred.
_CENTRE = (0.54, 0.46)
# Detector width in mm (2048 pixels of 13.5 um); a smaller demo frame is the same detector binned.
_DETECTOR_MM = 27.648
# Scattering ring of each sample: (radius at 285 eV and width, in frame sizes; strength).
_RING: dict[str | None, tuple[float, float, float]] = {
    "PS": (0.30, 0.04, 0.15),
    "PMMA": (0.30, 0.04, 0.15),
    "P3HT": (0.34, 0.03, 0.5),
    "P3HT:PCBM": (0.22, 0.03, 1.0),
}


def _resonant(energy: np.ndarray | float, sample: str | None) -> np.ndarray:
    e = np.asarray(energy, dtype=float)
    return sum((h * np.exp(-0.5 * ((e - c) / w) ** 2) for c, w, h in _RESONANCES[sample]), np.zeros_like(e))


def absorption(energy: np.ndarray | float, sample: str | None) -> np.ndarray:
    """Model C 1s absorption of a demo sample (arbitrary units).

    Parameters
    ----------
    energy : array_like
        Photon energies in eV.
    sample : str or None
        A demo sample name, or None for the blank membrane.

    Returns
    -------
    ndarray
        Pre-edge level + an edge step at 290 eV + the sample's resonances.
    """
    e = np.asarray(energy, dtype=float)
    step = 0.5 + np.arctan((e - 290.0) / 0.8) / np.pi
    if sample is None:
        step = 0.05 * step  # no carbon film: only a trace of contamination
    return np.asarray(0.12 + step + _resonant(e, sample))


def nexafs_energies() -> np.ndarray:
    """The NEXAFS energy grid: coarse pre- and post-edge, 0.1 eV steps over 283-292 eV."""
    parts = (np.arange(270, 283, 0.5), np.arange(283, 292, 0.1), np.arange(292, 320, 0.5), np.arange(320, 340.1, 2))
    return np.round(np.concatenate(parts), 2)


_RSOXS_ENERGIES = (270.0, 280.0, 282.0, 283.0, 284.0, 284.5, 285.0, 285.3,
                   285.6, 286.0, 287.0, 288.4, 290.0, 295.0, 300.0, 320.0)
_EN_SCAN_ENERGIES = (270.0, 283.0, 284.5, 285.3, 286.0, 288.4, 295.0, 320.0)


# ----------------------------------------------------------------------- writing
@dataclass
class _Demo:
    """What every run writer needs: the writer, the generator, the frame size."""

    w: BeamtimeWriter
    rng: np.random.Generator
    frame_shape: tuple[int, int]

    @staticmethod
    def _f(x: float, nd: int = 5) -> float:
        return round(float(x), nd)  # short, exact JSON instead of 17 noisy digits

    def event(self, data: dict[str, Any], t: float) -> str:
        return self.w.write_event(data, time=t, timestamps={k: t for k in data})

    def i0(self, frac: float) -> float:
        """Beam monitor: a slow decay over the scan plus 0.3 % noise."""
        return self._f(1.6 * np.exp(-0.05 * frac) * (1 + 0.003 * self.rng.standard_normal()))

    def baseline(self, sample: str | None, t: float) -> float:
        """A baseline stream with two readings of the stage and the ring current."""
        x, y, z = _STAGE[sample]
        self.w.open_stream("baseline", _BASELINE_KEYS, time=t)
        for _ in range(2):
            t += 0.4
            jitter = self.rng.normal(0, 0.002, 4)
            self.event({"sam_x_position": self._f(x + jitter[0], 4), "sam_y_position": self._f(y + jitter[1], 4),
                        "sam_z_position": self._f(z + jitter[2], 4), "sam_th_position": self._f(jitter[3], 4),
                        "beam_current": self._f(500.0 + self.rng.normal(0, 0.3), 2)}, t)
        return t + 0.5

    def open(self, plan: str, sample: str | None, t: float, operator: str, **meta: Any) -> None:
        self.w.open_run(plan, sample=sample, time=t, operator=operator, metadata={**_BASE_META, **meta})

    def nexafs(self, t: float, sample: str | None, operator: str, *, pol: float = 0.0,
               stop_after: int | None = None, notes: str = "") -> float:
        """A NEXAFS energy scan; ``stop_after`` aborts it after that many points."""
        self.open("nexafs", sample, t, operator, notes=notes, polarization=pol)
        t = self.baseline(sample, t)
        self.w.open_stream("primary", _NEXAFS_KEYS, time=t)
        energies = nexafs_energies()
        n = len(energies) if stop_after is None else stop_after
        for k, e in enumerate(energies[:n]):
            t += 0.8 + 0.05 * self.rng.random()  # move + 0.5 s dwell
            i0 = self.i0(k / len(energies))
            pd = 0.35 * i0 * float(absorption(e, sample)[()]) + self.rng.normal(0, 0.002)
            self.event({"energy_position": float(e), "polarization_position": pol, "i0": i0,
                        "photodiode": self._f(pd)}, t)
        t += 1.0
        self.w.close_run("success" if stop_after is None else "aborted", time=t)
        return t

    def frame(self, sample: str, energy: float, pol: float, exposure: float, i0: float) -> np.ndarray:
        """A detector frame: forward scattering + an energy-dependent ring, beamstop, Poisson noise."""
        h, w = self.frame_shape
        s = min(h, w)
        y, x = np.ogrid[:h, :w]
        cy, cx = _CENTRE[0] * h, _CENTRE[1] * w
        r = np.hypot(y - cy, x - cx) / s
        phi = np.arctan2(y - cy, x - cx)
        r_ring, width, strength = _RING[sample]
        r0 = r_ring * 285.0 / energy  # a fixed q scatters to a smaller angle at higher energy
        ring = 600.0 * strength * (0.3 + _resonant(energy, sample)) * np.exp(-0.5 * ((r - r0) / width) ** 2)
        ring = ring * (1 + 0.25 * np.cos(2 * (phi - np.deg2rad(pol))))  # polarization anisotropy
        rate = 4000.0 / (1 + (r / 0.03) ** 2) ** 1.5 + ring + 2.0
        shadow = (r < 0.06) | ((y > cy) & (np.abs(x - cx) < 0.02 * s + 0.5))  # beamstop disc + arm
        rate = np.where(shadow, 0.005 * rate, rate)
        return np.asarray(self.rng.poisson(rate * exposure * i0) + 100, dtype=np.int32)  # + CCD dark offset

    def geometry(self) -> dict[str, float]:
        """The detector geometry as the run metadata records it (keys of :mod:`intake_resonance.analysis.pyhyper`).

        The beam centre the frames are drawn around, counted from the first
        pixel's outer edge; a 27.648 mm detector (2048 pixels of 13.5 um,
        binned to the frame size) 500 mm behind the sample.
        """
        h, w = self.frame_shape
        return {"sdd": 500.0, "pixel_size": round(_DETECTOR_MM / min(h, w), 9),
                "beamcenter_x": round(_CENTRE[1] * w + 0.5, 6), "beamcenter_y": round(_CENTRE[0] * h + 0.5, 6)}

    def rsoxs(self, t: float, plan: str, sample: str, operator: str, energies: Sequence[float],
              pols: Sequence[float] = (0.0,), *, notes: str = "", close: bool = True) -> float:
        """An RSoXS scan: one frame per (polarization, energy); ``close=False`` leaves it open."""
        self.open(plan, sample, t, operator, notes=notes, polarizations=list(pols), detector="ccd", **self.geometry())
        t = self.baseline(sample, t)
        self.w.open_stream("primary", _rsoxs_keys(self.frame_shape), time=t)
        n = len(pols) * len(energies)
        for k, (pol, e) in enumerate((p, e) for p in pols for e in energies):
            exposure = 0.5 if 284.0 <= e <= 289.0 else 1.0  # shorter on resonance: less beam damage
            t += exposure + 2.5 + 0.2 * self.rng.random()  # readout + energy move
            i0 = self.i0(k / n)
            ev = self.event({"energy_position": e, "polarization_position": pol, "exposure": exposure, "i0": i0}, t)
            self.w.write_image(ev, "detector_image", self.frame(sample, e, pol, exposure, i0))
        t += 2.0
        if close:
            self.w.close_run("success", time=t)
        return t

    def grid(self, t: float, sample: str, operator: str, nx: int = 6, ny: int = 5) -> float:
        """A grid scan at the pi* resonance over a film whose thickness varies."""
        self.open("grid_scan", sample, t, operator, notes="thickness map at 285.3 eV", shape=[ny, nx])
        x0, y0, _ = _STAGE[sample]
        t = self.baseline(sample, t)
        self.w.open_stream("primary", _GRID_KEYS, time=t)
        mu = absorption(285.3, sample)[()]
        for k, (iy, ix) in enumerate(np.ndindex(ny, nx)):
            t += 1.5
            x, y = x0 - 1.0 + 0.4 * ix, y0 - 0.8 + 0.4 * iy
            thick = 1.0 + 0.15 * np.sin(1.3 * ix) * np.cos(0.9 * iy)
            i0 = self.i0(k / (nx * ny))
            pd = 0.35 * i0 * mu * thick + self.rng.normal(0, 0.002)
            self.event({"sam_x_position": round(x, 3), "sam_y_position": round(y, 3), "energy_position": 285.3,
                        "i0": i0, "photodiode": self._f(pd)}, t)
        t += 1.0
        self.w.close_run("success", time=t)
        return t


def _is_demo(db: Path) -> bool:
    """Whether ``db`` is a demo beamtime: every run from the demo's proposal, the first at :data:`EPOCH`.

    Read-only; a file that does not open as a beamtime, has no runs, or has a
    run from anywhere else is not the demo.
    """
    from ..beamtime.errors import BeamtimeError

    if not db.is_file():
        return False  # a store alone, or a folder: nothing says whose it is
    try:
        with Database(db) as bt:
            runs = records.list_runs(bt)
            ours = all(
                {k: r.metadata(bt).get(k) for k in ("proposal", "beamline")} == {k: _BASE_META[k] for k in ("proposal", "beamline")}
                for r in runs
            )
            return bool(runs) and ours and runs[0].time_start == EPOCH
    except BeamtimeError:
        return False


def _clear(db: Path, overwrite: bool) -> None:
    """Refuse to touch an existing demo, or remove exactly its .db (with journals) and .zarr.

    Only a demo is ever removed: a beamtime that merely has the demo's name
    (or a store without its database) is refused, overwrite or not.
    """
    sidecars = [db.with_name(db.name + s) for s in ("-journal", "-wal", "-shm")]
    existing = [p for p in (db, zarr_path_for(db), *sidecars) if p.exists() or p.is_symlink()]
    if existing and not overwrite:
        raise FileExistsError(
            f"a beamtime already exists at {db} (or its .zarr store); pass overwrite=True to replace it"
        )
    if existing and not _is_demo(db):
        raise FileExistsError(
            f"{db}: not the demo beamtime (its runs, or a database saying whose store "
            f"{zarr_path_for(db).name} is, are missing or from elsewhere); refusing to replace it: move or remove it yourself"
        )
    for p in existing:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def write_demo(
    folder: str | Path,
    *,
    seed: int = 0,
    frame_shape: tuple[int, int] = (128, 128),
    overwrite: bool = False,
) -> Path:
    """Write the demo beamtime ``folder/demo_beamtime.db`` (+ ``.zarr``).

    Two days of a carbon-edge beamtime on four samples: NEXAFS scans (with a
    baseline stream), ``rsoxs`` and ``en_scan`` runs with ``int32`` detector
    frames, a ``grid_scan``, a run without sample, an aborted run and, last,
    an ``en_scan`` that is still open (no stop time, status or event count).
    A later run reuses the sample name ``PS`` (the writer keeps the first row).
    RSoXS runs record their detector geometry in the run metadata (``sdd``,
    ``pixel_size`` in mm, ``beamcenter_x``/``beamcenter_y`` in pixels), as
    :func:`intake_resonance.analysis.pyhyper.to_pyhyper` reads it.

    Parameters
    ----------
    folder : str or Path
        Where to write; created if needed.
    seed : int
        Seeds the data and the uids: the same seed writes the same beamtime.
    frame_shape : tuple of int
        Detector frame size ``(shape_x, shape_y)``, each at least 16.
    overwrite : bool
        Replace an existing demo beamtime (only its ``.db``, journals and
        ``.zarr``); otherwise an existing one raises.

    Returns
    -------
    Path
        The ``.db`` file.

    Raises
    ------
    FileExistsError
        If the demo beamtime exists and ``overwrite`` is false.
    """
    if len(frame_shape) != 2 or min(frame_shape) < 16:
        raise ValueError(f"frame_shape must be two sizes of at least 16, got {frame_shape!r}")
    shape = (int(frame_shape[0]), int(frame_shape[1]))
    db = Path(folder) / f"{DEMO_NAME}.db"
    _clear(db, overwrite)
    w = BeamtimeWriter(db, seed=seed).open()
    d = _Demo(w, np.random.default_rng(seed), shape)
    try:
        for sample in _SAMPLES:
            w.add_sample(**sample)
        day1, day2 = EPOCH, EPOCH + 24 * _HOUR
        d.nexafs(day1, None, "alice", notes="I0 reference through the blank SiN membrane")
        d.nexafs(day1 + 0.4 * _HOUR, "PS", "alice", notes="reference spectrum")
        d.nexafs(day1 + 0.8 * _HOUR, "PMMA", "alice", notes="reference spectrum")
        d.nexafs(day1 + 1.2 * _HOUR, "P3HT", "alice")
        d.nexafs(day1 + 1.6 * _HOUR, "P3HT:PCBM", "alice", stop_after=40, notes="aborted: shutter closed")
        d.nexafs(day1 + 1.8 * _HOUR, "P3HT:PCBM", "alice", notes="repeat of the aborted scan")
        d.rsoxs(day1 + 4.0 * _HOUR, "rsoxs", "P3HT", "bob", _RSOXS_ENERGIES)
        d.rsoxs(day1 + 5.0 * _HOUR, "rsoxs", "P3HT:PCBM", "bob", _RSOXS_ENERGIES, notes="annealed 150 C")
        d.grid(day1 + 6.5 * _HOUR, "P3HT:PCBM", "bob")
        # Day two: PS is remounted; the writer keeps the first row named PS.
        w.add_sample("PS", formula="C8H8", serial="S-0107", tags=["remount"], beamline_pos="B1")
        d.nexafs(day2, "PS", "carol", pol=90.0, notes="second polarization after remount")
        d.rsoxs(day2 + 1.0 * _HOUR, "en_scan", "PS", "carol", _EN_SCAN_ENERGIES, (0.0, 90.0))
        d.rsoxs(day2 + 5.0 * _HOUR, "en_scan", "P3HT:PCBM", "carol", _EN_SCAN_ENERGIES[:6], (0.0, 90.0))
        # Day three, early: a scan still running when the files were copied.
        d.rsoxs(day2 + 23.5 * _HOUR, "en_scan", "PMMA", "carol", _EN_SCAN_ENERGIES[:6], close=False)
    finally:
        w.close()  # commits; the last run stays open, as the beamline leaves a live one
    return db


# ----------------------------------------------------------------------- summary
def _iso(t: float | None) -> str:
    if t is None:
        return "-"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")




def _frames(db: Database, uid: str) -> FrameStack | None:
    if "detector_image" not in records.image_fields(db, uid, "primary"):
        return None
    refs = records.frame_refs(db, uid, "detector_image", "primary")
    return FrameStack(db.zarr_path, refs, db.path, run=uid, stream="primary", field="detector_image")


def _print_runs(db: Database, runs: list[records.RunRecord], out: TextIO) -> None:
    # The counts every face shows (records.summary): events of all streams, an open run's too;
    # primary: the rows of the run's Dataset; frames: those it references.
    counts = records.counts_table(db)
    none = records.RunCounts()
    status = Counter(r.exit_status or "open" for r in runs)
    print(f"runs: {len(runs)} ({', '.join(f'{k} {v}' for k, v in sorted(status.items()))})", file=out)
    print(f"  {'uid':<8}  {'plan':<9}  {'sample':<10}  {'start (UTC)':<20}  {'status':<8}  {'events':>6}  "
          f"{'primary':>7}  {'frames':>6}", file=out)
    for r in runs:
        c = counts.get(r.uid, none)
        print(f"  {r.uid[:8]:<8}  {r.plan_name:<9}  {r.sample_name or '-':<10}  {_iso(r.time_start):<20}  "
              f"{r.exit_status or 'open':<8}  {c.num_events:>6}  {c.stream_events():>7}  {c.stream_frames():>6}", file=out)


def _print_samples(db: Database, runs: list[records.RunRecord], out: TextIO) -> None:
    used = Counter(r.sample_id for r in runs if r.sample_id is not None)
    print(f"samples: {len(used)}", file=out)
    for sid, n in sorted(used.items()):
        s = records.get_sample(db, sid)
        if s is not None:
            print(f"  {s.name:<10}  {s.formula or '-':<17}  {s.serial or '-':<7}  {s.beamline_pos or '-':<3}  "
                  f"{n} run(s)  tags={','.join(s.tags)}", file=out)


def _print_frames(db: Database, runs: list[records.RunRecord], out: TextIO) -> None:
    stacks = [(r, fs) for r in runs if (fs := _frames(db, r.uid)) is not None]
    counts = records.counts_table(db)
    n_frames = {r.uid: counts[r.uid].stream_frames() if r.uid in counts else 0 for r, _ in stacks}  # image_refs rows
    total = sum(n_frames.values())
    layouts = sorted({f"{fs.shape[1]}x{fs.shape[2]} {fs.dtype}" for _, fs in stacks})
    print(f"frames: {total} in {len(stacks)} runs, {', '.join(layouts) or '-'}", file=out)
    rsoxs = [(r, fs) for r, fs in stacks if r.plan_name in RSOXS_PLANS and len(fs) and r.exit_status == "success"]
    if rsoxs:
        r, fs = rsoxs[-1]  # runs come oldest first
        mean = float(np.asarray(fs[:], dtype=np.float64).mean())
        print(f"newest RSoXS run {r.uid[:8]} ({r.plan_name}, {r.sample_name}, {r.exit_status or 'open'}): "
              f"{n_frames[r.uid]} frames, mean intensity {mean:.1f} counts", file=out)


def _size(db_path: Path) -> int:
    store = zarr_path_for(db_path)
    files = [db_path, *(p for p in store.rglob("*") if p.is_file())] if store.is_dir() else [db_path]
    return sum(p.stat().st_size for p in files)


def summarize(db_path: str | Path, out: TextIO | None = None) -> None:
    """Open a beamtime read-only and print its runs, samples and frames.

    Parameters
    ----------
    db_path : str or Path
        The beamtime's ``.db`` file.
    out : text stream, optional
        Where to print; standard output by default.
    """
    out = sys.stdout if out is None else out
    db = Database(db_path)
    try:
        runs = records.list_runs(db)
        print(f"beamtime: {db.path} (+ {db.zarr_path.name}), {_size(db.path) / 1e6:.1f} MB, "
              f"schema {db.schema_version}", file=out)
        _print_runs(db, runs, out)
        _print_samples(db, runs, out)
        _print_frames(db, runs, out)
    finally:
        db.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Write the demo beamtime into a folder (replacing it) and print a summary.

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments; ``sys.argv[1:]`` by default.
    """
    parser = argparse.ArgumentParser(prog="python -m intake_resonance.tools.demo", description=main.__doc__)
    parser.add_argument("folder", nargs="?", default="demo-data", help="output folder (default: demo-data)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data and uids (default: 0)")
    parser.add_argument("--frame-shape", type=int, nargs=2, default=(128, 128), metavar=("X", "Y"))
    args = parser.parse_args(argv)
    start = _time.perf_counter()
    path = write_demo(args.folder, seed=args.seed, frame_shape=tuple(args.frame_shape), overwrite=True)
    print(f"wrote {path} in {_time.perf_counter() - start:.1f} s")
    summarize(path)


if __name__ == "__main__":
    main()
