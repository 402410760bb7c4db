"""The Icechunk repository a beamtime is virtualized into: where it may be, and how it is opened.

A repository lives on the local file system (Icechunk's
``local_filesystem_storage``) and holds one virtual chunk container: the
``file://`` URL of the beamtime's resolved ``.zarr`` root, so every chunk
reference points inside that store and nowhere else. Icechunk reads virtual
chunks only from containers a reader authorises when opening, which is the
one step a reader without intake-resonance takes::

    import icechunk, xarray as xr
    storage = icechunk.local_filesystem_storage("bt.icechunk")
    prefixes = icechunk.Repository.fetch_config(storage).virtual_chunk_containers
    repo = icechunk.Repository.open(storage, authorize_virtual_chunk_access={p: None for p in prefixes})
    ds = xr.open_zarr(repo.readonly_session("main").store, group=f"{uid}/primary", consolidated=False, zarr_format=3)

The repository's root group records which beamtime it mirrors (attribute
``intake_resonance``), so a later ``virtualize`` appends to it and a
repository of another beamtime, or anything else, is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..beamtime.errors import VirtualTargetError
from ..beamtime.format import zarr_path_for

__all__ = ["MARK", "check_target", "first_line", "open_repository", "open_virtual_session", "read_mark"]

#: Root-group attribute of a repository written by :func:`~intake_resonance.virtual.write.virtualize`.
MARK = "intake_resonance"


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


def open_repository(target: Path, prefix: str, beamtime: Path) -> tuple[Any, bool]:
    """Open the repository at ``target`` for ``beamtime``, creating it when the target is new or an empty folder.

    Parameters
    ----------
    target : Path
        Checked by :func:`check_target`.
    prefix : str
        The store's ``file://`` URL prefix (the virtual chunk container).
    beamtime : Path
        The resolved ``.db``, recorded in and compared with the root group.

    Returns
    -------
    (icechunk.Repository, bool)
        The repository, and whether it was created now.

    Raises
    ------
    VirtualTargetError
        The target is a file, a folder holding something else, an Icechunk
        repository not written by ``virtualize``, or one of another beamtime.
    """
    import icechunk

    storage = icechunk.local_filesystem_storage(str(target))
    auth: dict[str, Any] = {prefix: None}
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        config = icechunk.RepositoryConfig.default()
        config.set_virtual_chunk_container(icechunk.VirtualChunkContainer(prefix, icechunk.local_filesystem_store(prefix[len("file://"):])))
        try:
            return icechunk.Repository.create(storage, config, authorize_virtual_chunk_access=auth), True
        except icechunk.IcechunkError as exc:
            raise VirtualTargetError(f"cannot create an Icechunk repository here: {first_line(exc)}", target) from exc
    if not target.is_dir() or not icechunk.Repository.exists(storage):
        raise VirtualTargetError("already exists and is not an Icechunk repository (give a new or empty folder)", target)
    found = icechunk.Repository.fetch_config(storage)
    containers = (found.virtual_chunk_containers or {}) if found is not None else {}
    try:
        repo = icechunk.Repository.open(storage, authorize_virtual_chunk_access=_authorised(containers) | auth)
    except icechunk.IcechunkError as exc:
        raise VirtualTargetError(f"cannot open the Icechunk repository: {first_line(exc)}", target) from exc
    mark = read_mark(repo.readonly_session("main"))
    if mark is None:
        raise VirtualTargetError("is an Icechunk repository that intake-resonance did not write; refusing to add to it", target)
    if mark.get("beamtime") != str(beamtime) or mark.get("store") != prefix or set(containers) != {prefix}:
        raise VirtualTargetError(
            f"is the virtual repository of beamtime {mark.get('beamtime')!r} (store {mark.get('store')!r}), not of {str(beamtime)!r}",
            target,
        )
    return repo, False


def open_virtual_session(target: str | os.PathLike[str], *, snapshot_id: str | None = None, branch: str = "main") -> Any:
    """A read-only Icechunk session of a virtual repository, its chunk containers authorised.

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
        No Icechunk repository there.
    """
    import icechunk

    storage = icechunk.local_filesystem_storage(os.path.realpath(target))
    if not icechunk.Repository.exists(storage):
        raise VirtualTargetError("is not an Icechunk repository", os.fspath(target))
    config = icechunk.Repository.fetch_config(storage)
    containers = (config.virtual_chunk_containers or {}) if config is not None else {}
    repo = icechunk.Repository.open(storage, authorize_virtual_chunk_access=_authorised(containers))
    if snapshot_id is not None:
        return repo.readonly_session(snapshot_id=snapshot_id)
    return repo.readonly_session(branch)


def _authorised(containers: Any) -> dict[str, Any]:
    # Every container we write is a local file:// prefix: no credentials.
    return {prefix: None for prefix in containers}


def first_line(exc: BaseException) -> str:
    """An exception's first line of text, whitespace folded (its type's name when it has none)."""
    text = str(exc).strip()
    return " ".join(text.splitlines()[0].split()) if text else type(exc).__name__
