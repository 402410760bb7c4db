"""The Icechunk repository a beamtime is virtualized into: where it may be, and how it is opened.

A repository lives on the local file system (Icechunk 2's
``local_filesystem_storage``). Every chunk reference is *relative*: it names
the repository's one virtual chunk container, ``beamtime``
(``vcc://beamtime/runs/<uid>/<field>/c/0/0/0``), and the root group records
where the beamtime's ``.zarr`` store is relative to the repository folder
(attribute ``intake_resonance``, key ``store``). So a folder holding both
can be moved or copied elsewhere and still reads: a reader resolves the
store from the record and gives the container that place when opening.
Icechunk reads virtual chunks only from containers the reader authorises,
which is the one step a reader without intake-resonance takes::

    import icechunk, xarray as xr, zarr
    from pathlib import Path

    folder = Path("bt.icechunk").resolve()
    storage = icechunk.local_filesystem_storage(str(folder))
    record = zarr.open_group(icechunk.Repository.open(storage).readonly_session("main").store, mode="r").attrs["intake_resonance"]
    store = (folder / record["store"]).resolve()
    prefix = store.as_uri() + "/"
    config = icechunk.RepositoryConfig.default()
    config.set_virtual_chunk_container(icechunk.VirtualChunkContainer(prefix, icechunk.local_filesystem_store(str(store)), name="beamtime"))
    access = {prefix: icechunk.credentials.LocalFileSystemAccess}  # local files: no credentials, only consent
    repo = icechunk.Repository.open(storage, config=config, authorize_virtual_chunk_access=access)
    ds = xr.open_zarr(repo.readonly_session("main").store, group=f"{uid}/primary", consolidated=False, zarr_format=3)

:func:`open_virtual_session` does the same, and authorises nothing else:
a repository someone hands over is only read inside the beamtime store it
records, and only when that store is a beamtime's (a ``.zarr`` beside a
``.db``). A repository written with absolute references (layout 1, by
intake-resonance before Icechunk 2) is refused with the command that
rewrites it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..beamtime.errors import NotVirtualizableError, VirtualTargetError
from ..beamtime.format import zarr_path_for

__all__ = [
    "rust_failure",
    "CONTAINER",
    "LAYOUT_VERSION",
    "MARK",
    "check_target",
    "container",
    "first_line",
    "new_mark",
    "open_repository",
    "open_virtual_session",
    "read_mark",
]

#: Root-group attribute of a repository written by :func:`~intake_resonance.virtual.write.virtualize`.
MARK = "intake_resonance"
#: Name of the virtual chunk container every chunk reference is relative to.
CONTAINER = "beamtime"
#: Version of the repository layout and of its root record (1: absolute references, before Icechunk 2).
LAYOUT_VERSION = 2


def check_target(target: str | os.PathLike[str], db_path: str | os.PathLike[str]) -> Path:
    """The resolved target, after refusing one that would write into, over or around a beamtime.

    Refused (links resolved): the target inside any ``.zarr`` store; the
    beamtime's ``.db`` (and its journals) or store; a folder holding either;
    another beamtime's store (a ``.zarr`` beside a ``.db``).

    Raises
    ------
    VirtualTargetError
    """
    given = Path(os.fspath(target))
    out = Path(os.path.realpath(given))
    db = Path(os.path.realpath(db_path))
    store = Path(os.path.realpath(zarr_path_for(db)))
    inside = next((p for p in (out, *out.parents) if p.suffix.lower() == ".zarr" and p.is_dir()), None)
    if inside is not None:
        raise VirtualTargetError(f"refusing to write a repository inside the Zarr store {inside}", given)
    journals = {db.with_name(db.name + s) for s in ("-journal", "-wal", "-shm")}
    if out in {db, store, *journals} or db.is_relative_to(out) or store.is_relative_to(out):
        raise VirtualTargetError(f"refusing to write a repository over or around the beamtime {db}", given)
    if out.suffix.lower() == ".zarr" and out.with_suffix(".db").is_file():
        raise VirtualTargetError(f"refusing to write over the Zarr store of beamtime {out.with_suffix('.db')}", given)
    return out


def read_mark(session: Any) -> dict[str, Any] | None:
    """The ``intake_resonance`` record of a session's root group; None when it has none."""
    import zarr

    try:
        root = zarr.open_group(session.store, mode="r", zarr_format=3)
    except Exception:  # noqa: BLE001 - no root group: not a repository we wrote
        return None
    mark = root.attrs.get(MARK)
    return dict(mark) if isinstance(mark, dict) else None


def container(store_root: Path) -> tuple[Any, str]:
    """The repository config naming ``store_root`` as the ``beamtime`` container, and its URL prefix.

    Raises
    ------
    NotVirtualizableError
        If the store's path holds characters a URL must quote.
    """
    import icechunk

    from ..beamtime.store import BeamtimeStore
    from .chunks import store_url_prefix

    prefix = store_url_prefix(BeamtimeStore(store_root))
    config = icechunk.RepositoryConfig.default()
    config.set_virtual_chunk_container(
        icechunk.VirtualChunkContainer(prefix, icechunk.local_filesystem_store(prefix[len("file://") :]), name=CONTAINER)
    )
    return config, prefix


def new_mark(target: Path, db: Path) -> dict[str, Any]:
    """The root record of a new repository at ``target`` for the beamtime ``db`` (both resolved)."""
    return {
        "layout": LAYOUT_VERSION,
        "beamtime": os.path.relpath(db, target),
        "store": os.path.relpath(zarr_path_for(db), target),
        "container": CONTAINER,
    }


def open_repository(target: Path, beamtime: Path) -> tuple[Any, bool]:
    """Open the repository at ``target`` for ``beamtime``, creating it when the target is new or an empty folder.

    Parameters
    ----------
    target : Path
        Checked by :func:`check_target`.
    beamtime : Path
        The resolved ``.db``; the repository's record must lead to its store.

    Returns
    -------
    (icechunk.Repository, bool)
        The repository, its ``beamtime`` container authorised, and whether it
        was created now.

    Raises
    ------
    VirtualTargetError
        The target is a file, a folder holding something else, an Icechunk
        repository not written by ``virtualize``, one of another beamtime, or
        one written with absolute references (layout 1).
    """
    import icechunk

    storage = icechunk.local_filesystem_storage(str(target))
    config, prefix = container(Path(os.path.realpath(zarr_path_for(beamtime))))
    auth = _local_access(prefix)
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        try:
            return icechunk.Repository.create(storage, config, authorize_virtual_chunk_access=auth), True
        except BaseException as exc:  # noqa: BLE001 - a Rust panic is a BaseException (see rust_failure)
            if not rust_failure(exc):
                raise
            raise VirtualTargetError(f"cannot create an Icechunk repository here: {first_line(exc)}", target) from None
    if not target.is_dir() or not icechunk.Repository.exists(storage):
        raise VirtualTargetError("already exists and is not an Icechunk repository (give a new or empty folder)", target)
    store = _recorded_store(storage, target)
    if os.path.realpath(store) != os.path.realpath(zarr_path_for(beamtime)):
        raise VirtualTargetError(f"is the virtual repository of beamtime {store.with_suffix('.db')}, not of {beamtime}", target)
    try:
        return icechunk.Repository.open(storage, config=config, authorize_virtual_chunk_access=auth), False
    except icechunk.IcechunkError as exc:
        raise VirtualTargetError(f"cannot open the Icechunk repository: {first_line(exc)}", target) from exc


def _recorded_store(storage: Any, target: Path) -> Path:
    """The store a repository's record leads to (``..`` folded, links kept), after refusing what we did not write or cannot read."""
    import icechunk

    try:
        # Opened without authorising anything: only the record is read.
        bare = icechunk.Repository.open(storage)
    except icechunk.IcechunkError as exc:
        raise VirtualTargetError(
            f"cannot open the Icechunk repository: {first_line(exc)} (a repository written by Icechunk 1 is read by Icechunk 1 only: "
            "run `intake-resonance virtualize BEAMTIME TARGET` into a new folder)",
            target,
        ) from exc
    mark = read_mark(bare.readonly_session("main"))
    if mark is None:
        raise VirtualTargetError("is an Icechunk repository that intake-resonance did not write; refusing to use it", target)
    if mark.get("layout") != LAYOUT_VERSION or not isinstance(mark.get("store"), str):
        raise VirtualTargetError(
            f"was written by an earlier intake-resonance (layout {mark.get('layout')!r}, absolute chunk references that do not move "
            "with the beamtime): delete it and run `intake-resonance virtualize BEAMTIME TARGET` again",
            target,
        )
    # Links resolved only after the check: a store may be a link to a data volume, its .db is beside the link.
    store = Path(os.path.normpath(target / mark["store"]))
    if store.suffix.lower() != ".zarr" or not store.is_dir() or not store.with_suffix(".db").is_file():
        raise VirtualTargetError(
            f"records the beamtime store {mark['store']!r}, which is not a beamtime's .zarr store beside its .db here", target
        )
    return store


def open_virtual_session(target: str | os.PathLike[str], *, snapshot_id: str | None = None, branch: str = "main") -> Any:
    """A read-only Icechunk session of a virtual repository, its beamtime's store authorised.

    The store is found where the repository's record says, relative to the
    repository folder, so a folder holding both reads after it was moved.
    Nothing outside that store is authorised, whatever containers the
    repository's config lists.

    Parameters
    ----------
    target : str or Path
        The repository folder.
    snapshot_id : str, optional
        An earlier snapshot (default: the tip of ``branch``).
    branch : str
        Default ``"main"``.

    Returns
    -------
    icechunk.Session
        ``xr.open_zarr(session.store, group=f"{uid}/{stream}", consolidated=False, zarr_format=3)``
        opens a run; ``xr.open_datatree(session.store, engine="zarr", consolidated=False)`` all of them.

    Raises
    ------
    VirtualTargetError
        No Icechunk repository there, one we did not write, one of layout 1,
        or one whose recorded store is not a beamtime's.
    """
    import icechunk

    folder = Path(os.path.realpath(target))
    storage = icechunk.local_filesystem_storage(str(folder))
    if not icechunk.Repository.exists(storage):
        raise VirtualTargetError("is not an Icechunk repository", os.fspath(target))
    store = _recorded_store(storage, folder)
    try:
        config, prefix = container(Path(os.path.realpath(store)))
    except NotVirtualizableError as exc:
        raise VirtualTargetError(exc.message, os.fspath(target)) from exc
    repo = icechunk.Repository.open(storage, config=config, authorize_virtual_chunk_access=_local_access(prefix))
    if snapshot_id is not None:
        return repo.readonly_session(snapshot_id=snapshot_id)
    return repo.readonly_session(branch)


def _local_access(prefix: str) -> dict[str, Any]:
    """Authorisation of one local container: local files need no credentials, only Icechunk's sentinel saying so."""
    import icechunk

    return {prefix: icechunk.credentials.LocalFileSystemAccess}


def rust_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is Icechunk's error or a Rust panic in it, which pyo3 raises as ``PanicException``.

    A panic (a place Icechunk cannot write, on some releases) derives from
    ``BaseException`` and prints Rust's backtrace: it becomes one line of
    ours like any Icechunk error.
    """
    import icechunk

    return isinstance(exc, icechunk.IcechunkError) or type(exc).__name__ == "PanicException"


def first_line(exc: BaseException) -> str:
    """An exception's first line of text, whitespace folded (its type's name when it has none)."""
    text = str(exc).strip()
    return " ".join(text.splitlines()[0].split()) if text else type(exc).__name__
