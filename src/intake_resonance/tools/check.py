"""Check a whole beamtime and report every problem, instead of stopping at the first.

Reads raise at the first broken row they meet; :func:`check` walks every run,
stream, event and image reference and returns a list of :class:`Finding`
(errors: a read will fail there; warnings: reads work but something is odd,
e.g. a run that never closed or frames that belong to no run). Like every
read it never writes: the database opens read-only and the Zarr store is only
asked for array metadata (shape, dtype), never for pixels, so it stays fast on
beamtimes with thousands of 4 MiB frames. With ``pixels=True`` it also decodes
every referenced frame and reports each one that fails. Every file is read
through the store's boundary (:class:`~intake_resonance.beamtime.store.BeamtimeStore`).

It reads the raw rows (:mod:`.records.raw`), so that one bad row does not
hide the next.
"""

from __future__ import annotations

import itertools
import os
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..beamtime import records
from ..beamtime.errors import BeamtimeBusyError, BeamtimeError, _where
from ..beamtime.format import Database, array_path, open_zarr_array
from ..beamtime.frames import FrameStack, array_layout_problems
from ..beamtime.records import FrameRefs
from ..beamtime.store import BeamtimeStore

__all__ = ["Finding", "check"]

@dataclass(frozen=True)
class Finding:
    """One problem found in a beamtime.

    Parameters
    ----------
    level : str
        ``"error"`` (reading this part fails) or ``"warning"`` (reads work,
        but the data is incomplete or odd).
    message : str
        What was expected and what was found.
    path : str
        The ``.db`` file or ``.zarr`` store the finding is about.
    run, stream, seq_num, field : optional
        Where inside the beamtime, when known.
    """

    level: str
    message: str
    path: str
    run: str | None = None
    stream: str | None = None
    seq_num: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = _where(self.path, run=self.run, stream=self.stream, seq_num=self.seq_num, field=self.field)
        return f"{self.level}: {where}: {' '.join(self.message.split())}"


def _from_error(exc: BeamtimeError, level: str = "error", path: str | Path | None = None) -> Finding:
    return Finding(
        level,
        exc.message,
        exc.path if exc.path is not None else str(path),
        run=exc.run,
        stream=exc.stream,
        seq_num=exc.seq_num,
        field=exc.field,
    )


class _Checker:
    """State of one :func:`check` call: findings, open arrays and referenced frames."""

    def __init__(self, db: Database, frames: bool, pixels: bool = False) -> None:
        self.db = db
        self.db_path = str(db.path)
        self.store = db.zarr_path
        self.zstore = BeamtimeStore(self.store)
        self.frames = frames
        self.pixels = pixels
        self.findings: list[Finding] = []
        self.arrays: dict[str, Any] = {}  # zarr_group -> zarr.Array, or None when it cannot be opened
        self.referenced: dict[str, set[int]] = defaultdict(set)
        self.n_refs = 0
        self.runs_with_refs: set[str] = set()
        self.open_runs: set[str] = set()

    def add(self, level: str, message: str, path: str | Path | None = None, **where: Any) -> None:
        self.findings.append(Finding(level, message, str(path or self.db_path), **where))

    # -- runs ---------------------------------------------------------------
    def run(self, rec: records.RunRecord) -> None:
        uid = rec.uid
        if rec.sample_id is not None and rec.sample_name is None:
            self.add("warning", f"sample row {rec.sample_id} no longer exists; the run has no sample", run=uid)
        elif rec.sample_id is not None:
            try:
                records.get_sample(self.db, rec.sample_id)
            except BeamtimeError as exc:
                self.findings.append(replace(_from_error(exc), run=uid))
        try:
            rec.metadata(self.db)
        except BeamtimeError as exc:
            self.findings.append(_from_error(exc))
        if rec.time_stop is None:
            self.open_runs.add(uid)
            self.add(
                "warning",
                "run never closed (no time_stop): still being written, or the writer stopped; "
                "num_events stays 0 and only committed events are readable",
                run=uid,
            )
        n_events = sum(self.stream(uid, s_uid, name, keys) for s_uid, name, keys in records.raw_streams(self.db, uid))
        if rec.time_stop is not None and rec.num_events != n_events:
            self.add(
                "warning",
                f"num_events says {rec.num_events}, but {n_events} event(s) are committed",
                run=uid,
            )
        if self.frames:
            self.image_refs(uid)

    def stream(self, run: str, stream_uid: str, name: str, data_keys: Any) -> int:
        where = {"run": run, "stream": name}
        try:
            keys = records.decode_json(data_keys, {}, self.db, "stream data_keys", **where)
            if not isinstance(keys, dict):
                self.add("error", f"stream data_keys must be a JSON object, found {type(keys).__name__}", **where)
        except BeamtimeError as exc:
            self.findings.append(_from_error(exc))
        rows = records.raw_events(self.db, stream_uid)
        for seq_num, text in rows:
            if not isinstance(seq_num, int) or isinstance(seq_num, bool):
                self.add("error", f"events.seq_num must be an integer, found {seq_num!r}", **where)
                continue
            try:
                records.check_event_data(self.db, text, **where, seq_num=seq_num)
            except BeamtimeError as exc:
                self.findings.append(_from_error(exc))
        return len(rows)

    # -- frames -------------------------------------------------------------
    def image_refs(self, run: str) -> None:
        rows = records.raw_image_refs(self.db, run)
        if not rows:
            return
        self.n_refs += len(rows)
        self.runs_with_refs.add(run)
        seen: set[tuple[int, str]] = set()
        layouts: dict[str, set[tuple[Any, Any, Any]]] = defaultdict(set)
        by_group: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for row in rows:
            stream, seq_num, field, group, index, sx, sy, dtype = row
            where = {"run": run, "stream": stream, "seq_num": seq_num, "field": field}
            if (seq_num, field) in seen:
                self.add("error", "event has more than one frame for this field", **where)
            seen.add((seq_num, field))
            layouts[field].add((sx, sy, dtype))
            by_group[group].append(row)
        for field, found in layouts.items():
            if len(found) > 1:
                self.add(
                    "error", f"image_refs disagree on frame shape/dtype: {sorted(found, key=str)}", run=run, field=field
                )
        for group, group_rows in by_group.items():
            self.group(run, group, group_rows)

    def group(self, run: str, group: str, rows: list[tuple[Any, ...]]) -> None:
        n_before = len(self.findings)
        stream, seq_num, field = rows[0][:3]
        where = {"run": run, "stream": stream, "seq_num": seq_num, "field": field}
        try:
            array_path(self.store, group, **where)  # containment first: nothing outside is touched
        except BeamtimeError as exc:
            self.findings.append(_from_error(exc))
            return
        self.referenced[group].update(int(r[4]) for r in rows if isinstance(r[4], int))
        if not self.store.is_dir():
            return  # reported once for the whole beamtime
        if group not in self.arrays:
            try:
                self.arrays[group] = open_zarr_array(self.zstore, group, **where)
            except BeamtimeError as exc:
                self.arrays[group] = None
                self.findings.append(_from_error(exc))
                return
        arr = self.arrays[group]
        if arr is None:
            self.add("error", f"array {group!r} is missing from the store", self.store, **where)
            return
        for sx, sy, dtype in sorted({(r[5], r[6], r[7]) for r in rows}, key=str):
            first = next(r for r in rows if (r[5], r[6], r[7]) == (sx, sy, dtype))
            here = {"run": run, "stream": first[0], "seq_num": first[1], "field": first[2]}
            try:
                expected = np.dtype(dtype)
            except TypeError:
                expected = None
            for problem in array_layout_problems(arr, group, (sx, sy), expected):
                self.add("error", problem, self.store, **here)
            if expected is None:
                self.add("error", f"image_refs dtype {dtype!r} is not a NumPy dtype", **here)
        n = int(arr.shape[0]) if arr.ndim else 0
        readable = []
        for row in rows:
            stream, seq_num, field, _, index, *_ = row
            if not isinstance(index, int) or not 0 <= index < n:
                self.add(
                    "error",
                    f"index_in_stack {index} is beyond array {group!r} of {n} frames",
                    self.store,
                    run=run,
                    stream=stream,
                    seq_num=seq_num,
                    field=field,
                )
            else:
                readable.append(row)
        # Frames are decoded only where every number they are found by is an integer.
        readable = [r for r in readable if all(isinstance(v, int) and not isinstance(v, bool) for v in (r[1], r[5], r[6]))]
        if self.pixels and readable and not any(f.level == "error" and f.run == run for f in self.findings[n_before:]):
            self.decode(run, group, readable)

    def decode(self, run: str, group: str, rows: list[tuple[Any, ...]]) -> None:
        """Read every frame of ``rows`` (one array, sound metadata); report each that fails."""
        by_stack: dict[tuple[Any, Any], list[tuple[Any, ...]]] = defaultdict(list)
        for row in rows:
            by_stack[(row[0], row[2])].append(row)
        for (stream, field), stack_rows in by_stack.items():
            refs = FrameRefs(
                seq_num=np.array([r[1] for r in stack_rows], np.int64),
                groups=(group,),
                group=np.zeros(len(stack_rows), np.int64),
                index=np.array([r[4] for r in stack_rows], np.int64),
                frame_shape=(int(stack_rows[0][5]), int(stack_rows[0][6])),
                dtype=str(stack_rows[0][7]),
            )
            stack = FrameStack(self.store, refs, self.db_path, run=run, stream=stream, field=field)
            # Blocks of about 64 MiB: the decoder's threads stay busy, memory stays bounded.
            per_block = max(1, (64 << 20) // max(1, stack.nbytes // max(1, len(stack))))
            for start in range(0, len(stack), per_block):
                block = range(start, min(start + per_block, len(stack)))
                try:
                    stack[block.start : block.stop]
                except BeamtimeError:
                    for i in block:  # which ones: each failing frame is one finding
                        try:
                            stack[i]
                        except BeamtimeError as exc:
                            self.findings.append(_from_error(exc))

    def store_contents(self) -> None:
        """Report a missing store (when frames are referenced) and frames no committed row references."""
        if not self.store.is_dir():
            if self.n_refs:
                self.add(
                    "error",
                    f"Zarr store {self.store} does not exist, but {self.n_refs} image_refs row(s) in "
                    f"{len(self.runs_with_refs)} run(s) point into it: their frames cannot be read "
                    "(scalar data is still readable)",
                    self.store,
                )
            return
        for group in _store_arrays(self.zstore):
            arr = self.arrays.get(group)
            if arr is None:
                try:
                    arr = open_zarr_array(self.zstore, group)
                except BeamtimeError as exc:
                    self.add("warning", f"cannot inspect array {group!r}: {exc.message}", self.store)
                    continue
            n = int(arr.shape[0]) if arr.ndim else 0
            # Counted, not listed: the array's length comes from the file and can be anything.
            used = {i for i in self.referenced.get(group, set()) if 0 <= i < n}
            n_unused = n - len(used)
            if not n_unused:
                continue
            unused = list(itertools.islice((i for i in itertools.count() if i not in used), min(n_unused, 11)))
            parts = group.split("/")
            run = parts[1] if len(parts) == 3 and parts[0] == "runs" else None
            shown = ", ".join(map(str, unused[:10])) + (", ..." if n_unused > 10 else "")
            note = ""
            if run in self.open_runs:
                note = "; the run is still open, so its rows may not be committed yet"
            self.add(
                "warning",
                f"{n_unused} of {n} frame(s) in array {group!r} (index {shown}) are not part of any run: "
                f"no committed image_refs row references them{note}",
                self.store,
                run=run,
                field=parts[2] if run else None,
            )


def _store_arrays(store: BeamtimeStore) -> list[str]:
    """Paths (``a/b/c``) of the arrays in a Zarr 2 or 3 directory store, from metadata files only.

    Linked folders are not walked, and metadata is read through the store's boundary.
    """
    found = []
    root = os.path.realpath(store.root)
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root).as_posix()
        is_array = ".zarray" in filenames
        if not is_array and "zarr.json" in filenames:
            try:
                text = store.read("zarr.json" if rel == "." else f"{rel}/zarr.json")
                # orjson: a document nested 10^5 deep is a ValueError, not Python's RecursionError
                is_array = text is not None and orjson.loads(text).get("node_type") == "array"
            except (BeamtimeError, ValueError, AttributeError, RecursionError):
                is_array = False
        if is_array:
            dirnames.clear()  # chunk folders can hold thousands of files; no need to walk them
            if rel != ".":
                found.append(rel)
        dirnames.sort()
    return sorted(found)


def check(path: str | Path, *, frames: bool = True, pixels: bool = False) -> list[Finding]:
    """Check a beamtime and report every problem found.

    Parameters
    ----------
    path : str or Path
        The beamtime's ``.db`` file (its ``.zarr`` store sits beside it).
    frames : bool, default True
        Also check the image references against the Zarr store (array
        presence, containment, shape, dtype, index range, frames no row
        references). Only array metadata is read, never pixels.
    pixels : bool, default False
        Also decode every referenced frame (with ``frames``) and report each
        one that fails: a damaged, absent or linked-out chunk. Reads every
        frame once, so it takes as long as reading the whole beamtime.

    Returns
    -------
    list of Finding
        Errors (a read fails there) and warnings, runs oldest first; empty
        for a sound beamtime. A file that is missing or not a beamtime gives
        a single error.

    Raises
    ------
    BeamtimeBusyError
        If a writer holds the database locked for longer than
        ``resonance.busy-timeout``: that is no finding about the beamtime.

    Notes
    -----
    Nothing is written: the database opens read-only, as for every read.
    """
    try:
        db = Database(path)
    except BeamtimeBusyError:
        raise  # not a finding: the file is fine, a writer holds it
    except BeamtimeError as exc:
        return [_from_error(exc, path=path)]
    checker = _Checker(db, frames, pixels)
    try:
        try:
            runs = records.list_runs(db)
        except BeamtimeBusyError:
            raise
        except BeamtimeError as exc:
            return [_from_error(exc, path=path)]
        for rec in runs:
            try:
                checker.run(rec)
            except BeamtimeBusyError:
                raise
            except BeamtimeError as exc:  # e.g. a damaged page: report it and go on with the next run
                finding = _from_error(exc, path=db.path)
                checker.findings.append(finding if finding.run else replace(finding, run=rec.uid))
        if frames:
            checker.store_contents()
    finally:
        db.close()
    return checker.findings
