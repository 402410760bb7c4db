""":func:`virtualize`: a beamtime written as a virtual Zarr repository (Icechunk), frames left where they lie.

Layout, as :func:`~intake_resonance.datasets.open.open_run_tree` and the
engine's DataTree: a group ``<uid>`` per run holding the run's attributes,
and in it a group per stream (``<uid>/primary``, ``<uid>/baseline``, ...)
holding that stream's Dataset: ``time`` and ``seq_num`` coordinates and the
scalar columns as native arrays, each frame variable as virtual chunks, one
per event, pointing at the chunk files of the beamtime's ``.zarr``.

Running it again on the same target appends: runs not yet in the repository
are added, a run written before is written again whole if it changed (new
events, frames, streams, it closed) or if a chunk file it references changed
since (a restore, a copy that did not keep times, a demo written again: its
size or modification time differ), other runs are left alone. Each call that
changes something is one Icechunk commit, so every earlier snapshot stays
readable as it was. :func:`verify_virtual` (``virtualize --verify``) says
which runs of a repository no longer match their beamtime, without writing.

Nothing in the beamtime is ever written: the ``.db`` is opened read-only and
of the store only array metadata and file sizes and times are read.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ..beamtime import records
from ..beamtime.errors import BeamtimeError, NotVirtualizableError, VirtualTargetError
from ..beamtime.format import Database
from ..beamtime.store import BeamtimeStore
from ..datasets.attrs import run_attrs
from ..datasets.location import open_database
from .dataset import VirtualRun, encoded_attrs, virtual_run_dataset
from .repository import CONTAINER, MARK, check_target, first_line, new_mark, open_repository, read_mark, rust_failure

__all__ = ["VirtualizeReport", "verify_virtual", "virtualize"]



@dataclass
class VirtualizeReport:
    """What one :func:`virtualize` call did.

    Attributes
    ----------
    target : Path
        The repository folder (resolved).
    snapshot_id : str or None
        The new commit; None when nothing changed (no commit made).
    created : bool
        Whether the repository was created by this call.
    written : list of str
        Runs written (new ones, and open runs written again).
    unchanged : list of str
        Runs already in the repository as they are now.
    refreshed : list of str
        Runs written again (so also in ``written``) only because chunk files
        they reference changed since they were referenced.
    skipped : dict of str to str
        Runs left out with ``skip_unmappable=True``, with the reason.
    chunks : int
        Chunk references written.
    """

    target: Path
    snapshot_id: str | None = None
    created: bool = False
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    refreshed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    chunks: int = 0


def virtualize(
    beamtime: Database | str | os.PathLike[str],
    target: str | os.PathLike[str],
    runs: Iterable[str] | None = None,
    *,
    skip_unmappable: bool = False,
    progress: bool | None = None,
) -> VirtualizeReport:
    """Write a beamtime's runs into an Icechunk repository as virtual Zarr.

    Parameters
    ----------
    beamtime : Database or path
        The beamtime's ``.db`` (opened read-only).
    target : str or Path
        The repository folder: new, empty, or one this function wrote for
        the same beamtime (then new runs and changes of open runs are
        appended as a new commit).
    runs : iterable of str, optional
        Uids or unique prefixes (6+ characters); default every run.
    skip_unmappable : bool
        Leave out runs whose frames cannot be referenced one chunk per frame
        (their reasons are in the report) instead of raising.
    progress : bool, optional
        Draw a progress bar over the runs on stderr (default: no).

    Returns
    -------
    VirtualizeReport

    Raises
    ------
    VirtualTargetError
        The target is inside a ``.zarr`` store, is or holds the beamtime, or
        holds something else than this beamtime's virtual repository.
    NotVirtualizableError
        A run's frames do not map (see :mod:`intake_resonance.virtual.chunks`),
        or the store's path cannot be a chunk URL. Nothing is committed.
    RunNotFoundError
        A uid in ``runs`` matches no run.
    BeamtimeError
        Any broken row or frame reference met.

    Examples
    --------
    >>> report = virtualize("bt.db", "bt.icechunk")          # doctest: +SKIP
    >>> session = open_virtual_session("bt.icechunk")          # doctest: +SKIP
    >>> xr.open_zarr(session.store, group=f"{uid}/primary", consolidated=False, zarr_format=3)  # doctest: +SKIP
    """
    with open_database(beamtime) as db:
        out = check_target(target, db.path)
        store = BeamtimeStore(db.zarr_path)
        uids = records.list_uids(db) if runs is None else list(dict.fromkeys(records.resolve_uid(db, u) for u in runs))
        repo, created = open_repository(out, Path(os.path.realpath(db.path)))
        report = VirtualizeReport(out, created=created)
        try:
            _append(repo, db, store, uids, report, skip_unmappable=skip_unmappable, progress=bool(progress))
        except BaseException as exc:  # noqa: BLE001 - Icechunk's errors and its Rust panics (a BaseException)
            # a repository Icechunk cannot write (or another writer got there first)
            if not (isinstance(exc, _icechunk_errors()) or rust_failure(exc)):
                raise
            raise VirtualTargetError(f"Icechunk could not write the repository: {first_line(exc)}", out) from None
    return report


def _append(
    repo: Any,
    db: Database,
    store: BeamtimeStore,
    uids: list[str],
    report: VirtualizeReport,
    *,
    skip_unmappable: bool,
    progress: bool,
) -> None:
    """Write the runs not yet in the repository (or changed while open), then commit once."""
    from tqdm import tqdm

    session = repo.writable_session("main")
    root = _root(session)
    mark = dict(root.attrs.get(MARK) or new_mark(report.target, Path(os.path.realpath(db.path))))
    known: dict[str, Any] = dict(mark.get("runs") or {})
    # Chunks modified after this moment make Icechunk refuse to read them (it keeps whole seconds).
    stamp = datetime.now(UTC) + timedelta(seconds=1)
    with tqdm(uids, unit="run", desc="virtualize", disable=not progress, file=sys.stderr) as bar:
        for uid in bar:
            entry = known.get(uid)
            built = _build(db, store, uid, skip_unmappable, report)
            if built is None:
                continue
            run, streams = built
            signature, files = _signature(run, streams), _files(streams)
            if entry is not None and entry.get("signature") == signature:
                if entry.get("files") == files:
                    report.unchanged.append(uid)
                    continue
                report.refreshed.append(uid)  # the same run, its chunk files rewritten: reference them again
            _write_run(session, root, db, run, streams, stamp, replace=entry is not None)
            known[uid] = {"closed": run.time_stop is not None, "signature": signature, "files": files}
            report.written.append(uid)
            report.chunks += sum(v.n_chunks for v in streams.values())
    if report.written:
        mark["runs"] = known
        root.attrs[MARK] = mark
        report.snapshot_id = session.commit(
            f"intake-resonance virtualize: {len(report.written)} run(s) of {Path(db.path).name}",
            metadata={"beamtime": str(db.path), "runs": report.written},
        )


def _icechunk_errors() -> tuple[type[BaseException], ...]:
    import icechunk

    return (icechunk.IcechunkError, icechunk.ConflictError, icechunk.RebaseFailedError)


def _root(session: Any) -> Any:
    import zarr

    return zarr.open_group(session.store, mode="a", zarr_format=3)


def _build(
    db: Database, store: BeamtimeStore, uid: str, skip_unmappable: bool, report: VirtualizeReport
) -> tuple[records.RunRecord, dict[str, VirtualRun]] | None:
    """The run and its streams as virtual Datasets; None when skipped as unmappable."""
    run = records.get_run(db, uid)
    assert run is not None  # uids come from the database
    try:
        streams = {s.name: virtual_run_dataset(db, store, uid, s.name, f"vcc://{CONTAINER}/") for s in records.list_streams(db, uid)}
    except NotVirtualizableError as exc:
        if not skip_unmappable:
            raise
        report.skipped[uid] = exc.message
        return None
    return run, streams


def _signature(run: records.RunRecord, streams: dict[str, VirtualRun]) -> str:
    """What must be equal for a run already written to stay as it is."""
    state = {
        "time_stop": run.time_stop,
        "exit_status": run.exit_status,
        "streams": {name: [dict(v.dataset.sizes), v.n_chunks, sorted(map(str, v.dataset.variables))] for name, v in streams.items()},
    }
    return json.dumps(state, sort_keys=True, default=str)


def _files(streams: dict[str, VirtualRun]) -> str:
    """A digest of every chunk file a run references: its key, size and modification time (stat only, no read)."""
    h = hashlib.sha256()
    for name in sorted(streams):
        for var, chunk_map in sorted(streams[name].maps.items()):
            h.update(f"{name}/{var}\0".encode())
            h.update("\0".join(map(str, chunk_map.paths.tolist())).encode())
            h.update(np.ascontiguousarray(chunk_map.lengths).tobytes())
            h.update(np.ascontiguousarray(chunk_map.mtimes).tobytes())
    return h.hexdigest()


def verify_virtual(beamtime: Database | str | os.PathLike[str], target: str | os.PathLike[str]) -> dict[str, str]:
    """The runs of a virtual repository that no longer match their beamtime, and why; nothing is written.

    Each run the repository holds is compared with the beamtime now: its
    rows (events, streams, status) and every chunk file it references (size
    and modification time; no frame is read).

    Parameters
    ----------
    beamtime : Database or path
        The beamtime the repository was written for.
    target : str or Path
        The repository folder.

    Returns
    -------
    dict of str to str
        uid -> one line: what changed. Empty when the repository is true.
        ``virtualize(beamtime, target)`` references the changed runs again.
    """
    with open_database(beamtime) as db:
        out = check_target(target, db.path)
        if not out.is_dir() or not any(out.iterdir()):  # open_repository would make one: verifying writes nothing
            raise VirtualTargetError("no virtual repository here to verify", out)
        repo = open_repository(out, Path(os.path.realpath(db.path)))[0]
        store = BeamtimeStore(db.zarr_path)
        mark = _root_mark(repo)
        stale: dict[str, str] = {}
        for uid, entry in (mark.get("runs") or {}).items():
            if records.get_run(db, uid) is None:
                stale[uid] = "the run is no longer in the beamtime"
                continue
            try:
                built = _build(db, store, uid, False, VirtualizeReport(out))
            except BeamtimeError as exc:
                stale[uid] = f"its frames cannot be referenced now: {first_line(exc)}"
                continue
            assert built is not None  # not skipped: skip_unmappable is False
            run, streams = built
            if entry.get("signature") != _signature(run, streams):
                stale[uid] = "the run changed (events, streams or status) since it was written"
            elif entry.get("files") != _files(streams):
                stale[uid] = "chunk files it references changed since (size or modification time)"
        return stale


def _root_mark(repo: Any) -> dict[str, Any]:
    mark = read_mark(repo.readonly_session("main"))
    return dict(mark or {})


def _write_run(
    session: Any, root: Any, db: Database, run: records.RunRecord, streams: dict[str, VirtualRun], stamp: datetime, *, replace: bool
) -> None:
    import virtualizarr  # noqa: F401 - registers the .vz accessor

    if replace and run.uid in root:
        del root[run.uid]
    group = root.require_group(run.uid)
    group.attrs.update(encoded_attrs(run_attrs(db, run)))
    for name, vrun in streams.items():
        where = f"{run.uid}/{name}"
        if vrun.maps:
            # VirtualiZarr checks references against containers' URL prefixes; ours name
            # the container (vcc://beamtime/...), which Icechunk resolves itself.
            vrun.dataset.vz.to_icechunk(session.store, group=where, last_updated_at=stamp, validate_containers=False)
        else:  # nothing virtual: a plain Zarr group, as VirtualiZarr would write it (without its warning)
            vrun.dataset.to_zarr(session.store, group=where, zarr_format=3, consolidated=False, mode="w")
