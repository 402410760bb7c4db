"""The Zarr store of a beamtime as a boundary: nothing outside it is ever read.

:class:`BeamtimeStore` is a read-only Zarr store over a beamtime's ``.zarr``
directory. Every key it is asked for (array metadata, chunk files, folder
listings) is mapped to a path and resolved, links included, before the file
is opened; a path that leads outside the store's own resolved root is
refused with :class:`~intake_resonance.beamtime.errors.StoreEscapeError`. The store
itself may be a link (facilities mount data volumes that way): the boundary
is where the link leads.

The check and the open are one: a file is opened along its resolved path
from a descriptor of the store's root, folder by folder relative to the
folder above, none of them followed if it is a link (``O_NOFOLLOW``). A link
swapped after the check, to lead out of the store, is then refused
(:class:`~intake_resonance.beamtime.errors.StoreEscapeError`) instead of
followed. (Where the platform cannot open relative to a folder descriptor,
the file is opened by its resolved path and its identity compared with the
checked one.) A hard link or a bind mount is part of the store by definition:
neither can be told from a file of the store.

Both ways of reading frames go through it: Zarr (as its store) and the direct
zstd reader (:meth:`BeamtimeStore.read`). It also refuses to make numbers
out of nothing: a chunk key that has no file raises
:class:`~intake_resonance.beamtime.errors.FramesMissingError` instead of letting Zarr
fill the frame with the fill value, and a folder where a chunk file should be
raises :class:`~intake_resonance.beamtime.errors.FrameDecodeError`. Frames are only
ever read for ``image_refs`` rows, so every chunk asked for belongs to a
referenced frame. Set ``dask.config`` ``resonance.absent-chunks`` to
``"fill"`` to read absent chunks as Zarr does (files written without Zarr's
``write_empty_chunks`` hold no chunk for an all-fill frame).
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from zarr.abc.store import OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest
from zarr.buffer import default_buffer_prototype

from .bounds import MAX_METADATA_BYTES, ChunkBound, check_chunk, max_chunk_file
from .errors import FrameDecodeError, FramesMissingError, StoreEscapeError

__all__ = ["BeamtimeStore", "METADATA_NAMES", "absent_chunks_policy", "open_array"]

#: Key names that hold metadata, not chunks: Zarr asks for them whether or
#: not they exist (format 3 ``zarr.json``; format 2 ``.zarray`` and friends).
METADATA_NAMES = frozenset({"zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata"})


def absent_chunks_policy() -> str:
    """``"raise"`` (default) or ``"fill"``: what an absent chunk of a referenced frame does.

    Read from ``dask.config`` ``resonance.absent-chunks``.
    """
    import dask.config

    policy = dask.config.get("resonance.absent-chunks", "raise")
    if policy not in ("raise", "fill"):
        raise ValueError(f"resonance.absent-chunks must be 'raise' or 'fill', not {policy!r}")
    return str(policy)


class BeamtimeStore(Store):
    """A read-only Zarr store that never reads outside its own folder.

    Parameters
    ----------
    root : str or Path
        The beamtime's ``.zarr`` directory (it may itself be a link).

    Notes
    -----
    Keys are checked as text first (no absolute paths, no ``.``/``..`` or
    empty segments, no backslash or NUL), then resolved on disk: a link
    anywhere below the root that leads out of it is refused before the
    target is opened. Writing, deleting and moving are not supported.
    """

    supports_writes = False
    supports_deletes = False
    supports_partial_writes = False
    supports_listing = True

    def __init__(self, root: str | Path) -> None:
        super().__init__(read_only=True)
        self.root = Path(root)
        self._real_root = os.path.realpath(self.root)
        self._bounds: dict[str, ChunkBound] = {}

    def bound(self, group: str, bound: ChunkBound) -> None:
        """Check every whole chunk of the array at ``group`` against ``bound`` before it is returned (:mod:`.bounds`)."""
        self._bounds[group.strip("/")] = bound

    def _bound_of(self, key: str) -> ChunkBound | None:
        for group, bound in self._bounds.items():
            if key.startswith(group + "/"):
                return bound
        return None

    def _check_bound(self, key: str, raw: bytes) -> None:
        bound = self._bound_of(key)
        why = None if bound is None else check_chunk(raw, bound)
        if why is not None:
            raise FrameDecodeError(f"chunk {key!r} does not decode: it {why} (refused before decoding)", self.root)

    # -- the boundary ---------------------------------------------------------
    def path_of(self, key: str) -> Path:
        """The file a key names, after checking that it stays inside the store.

        Raises
        ------
        StoreEscapeError
            If the key, or a link on its way, leads outside the store.
        """
        self._check_key(key)
        return Path(self._resolve(key)[0])

    def _check_key(self, key: str) -> None:
        bad = (
            not isinstance(key, str)
            or not key
            or key.startswith("/")
            or "\\" in key
            or "\0" in key
            or any(p in ("", ".", "..") for p in key.split("/"))
        )
        if bad:
            raise StoreEscapeError(f"key {key!r} is not a path inside the Zarr store; refusing to read it", self.root)

    def _resolve(self, key: str) -> tuple[str, str]:
        """The key's path under the root and where it leads (checked to be inside)."""
        path = os.path.join(self._real_root, *key.split("/"))
        real = os.path.realpath(path)
        if real != path and not real.startswith(self._real_root + os.sep):
            raise StoreEscapeError(
                f"{key!r} is a link that leads outside the Zarr store (to {real}); refusing to read it", self.root
            )
        return path, real

    def _open_inside(self, key: str) -> int:
        """A descriptor of the file ``key`` names, opened without following any link the check did not see."""
        self._check_key(key)
        _, real = self._resolve(key)
        rel = os.path.relpath(real, self._real_root).split(os.sep)
        swapped = StoreEscapeError(
            f"{key!r} changed while it was opened (a folder or file became a link); refusing to read it", self.root
        )
        if os.open not in os.supports_dir_fd:  # pragma: no cover - Windows
            fd = os.open(real, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            st, now = os.fstat(fd), os.stat(real)
            if (st.st_dev, st.st_ino) != (now.st_dev, now.st_ino):
                os.close(fd)
                raise swapped
            return fd
        follow_none = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self._real_root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in rel[:-1]:
                try:
                    inner = os.open(part, follow_none | os.O_DIRECTORY, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise swapped from None
                    raise
                os.close(fd)
                fd = inner
            try:
                # Non-blocking: a named pipe opens at once (and is refused by its type) instead of waiting.
                return os.open(rel[-1], follow_none | os.O_NONBLOCK, dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise swapped from None
                raise
        finally:
            os.close(fd)

    def read(self, key: str, byte_range: Any = None) -> bytes | None:
        """The bytes stored under ``key``; None for absent metadata.

        Raises
        ------
        StoreEscapeError
            If the key leads outside the store.
        FramesMissingError
            If a chunk key has no file (unless ``resonance.absent-chunks``
            is ``"fill"``, then None).
        FrameDecodeError
            If a chunk key is a folder or cannot be read.
        """
        is_chunk = key.rsplit("/", 1)[-1] not in METADATA_NAMES
        try:
            fd = self._open_inside(key)
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                os.close(fd)
                raise IsADirectoryError(key)
            if not stat.S_ISREG(mode):  # a pipe would block, a device never end
                os.close(fd)
                raise FrameDecodeError(f"{key!r} is not a regular file (a pipe, socket or device); refusing to read it", self.root)
            with open(fd, "rb") as fh:
                if not is_chunk and os.fstat(fh.fileno()).st_size > MAX_METADATA_BYTES:
                    raise FrameDecodeError(f"{key!r} is larger than {MAX_METADATA_BYTES} bytes: no metadata document is", self.root)
                bound = self._bound_of(key) if is_chunk and byte_range is None else None
                if bound is not None and os.fstat(fh.fileno()).st_size > max_chunk_file(bound.decoded):
                    raise FrameDecodeError(  # refused before a byte is read
                        f"chunk {key!r} does not decode: it is larger than {max_chunk_file(bound.decoded)} bytes, more "
                        f"than a chunk of {bound.decoded} bytes can need (refused before reading)",
                        self.root,
                    )
                raw = _read_range(fh, byte_range)
            if bound is not None:
                self._check_bound(key, raw)
            return raw
        except (FileNotFoundError, NotADirectoryError):
            if is_chunk and absent_chunks_policy() == "raise":
                raise FramesMissingError(
                    f"chunk {key!r} is absent from the store: the frame was never stored or was deleted "
                    "(Zarr would read it as the array's fill value; for files whose writer skipped "
                    "all-fill frames, dask.config.set({'resonance.absent-chunks': 'fill'}) reads it so)",
                    self.root,
                ) from None
            return None
        except IsADirectoryError:
            if is_chunk:
                raise FrameDecodeError(f"chunk {key!r} is a folder, not a chunk file", self.root) from None
            return None
        except EOFError as exc:
            raise FrameDecodeError(f"cannot read {key!r}: {exc}", self.root) from None
        except OSError as exc:
            raise FrameDecodeError(f"cannot read {key!r}: {exc.strerror or exc}", self.root) from exc

    # -- zarr.abc.store.Store -------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, BeamtimeStore) and other._real_root == self._real_root

    def __hash__(self) -> int:
        return hash(("BeamtimeStore", self._real_root))

    def __repr__(self) -> str:
        return f"BeamtimeStore({str(self.root)!r})"

    def with_read_only(self, read_only: bool = False) -> BeamtimeStore:  # noqa: D102 - zarr's docstring
        if not read_only:
            raise ValueError("a BeamtimeStore is read-only")
        return BeamtimeStore(self.root)

    async def get(self, key: str, prototype: Any = None, byte_range: Any = None) -> Any:  # noqa: D102
        data = await asyncio.to_thread(self.read, key, byte_range)
        return None if data is None else (prototype or default_buffer_prototype()).buffer.from_bytes(data)

    def get_sync(self, key: str, *, prototype: Any = None, byte_range: Any = None) -> Any:  # noqa: D102
        data = self.read(key, byte_range)
        return None if data is None else (prototype or default_buffer_prototype()).buffer.from_bytes(data)

    async def get_partial_values(self, prototype: Any, key_ranges: Iterable[tuple[str, Any]]) -> list[Any]:  # noqa: D102
        return [await self.get(key, prototype, byte_range) for key, byte_range in key_ranges]

    async def exists(self, key: str) -> bool:  # noqa: D102
        try:
            return self.path_of(key).is_file()
        except StoreEscapeError:
            return False

    async def set(self, key: str, value: Any) -> None:  # noqa: D102
        raise ValueError(f"{self.root}: a beamtime's Zarr store is read-only")

    async def delete(self, key: str) -> None:  # noqa: D102
        raise ValueError(f"{self.root}: a beamtime's Zarr store is read-only")

    async def list(self) -> AsyncIterator[str]:  # noqa: D102
        for key in _walk(self, ""):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:  # noqa: D102
        for key in _walk(self, prefix.rstrip("/")):
            yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:  # noqa: D102
        prefix = prefix.rstrip("/")
        try:
            base = self.path_of(prefix) if prefix else Path(self._real_root)
            names = sorted(os.listdir(base))
        except (StoreEscapeError, OSError):
            return
        for name in names:
            yield name


def _walk(store: BeamtimeStore, prefix: str) -> list[str]:
    """Keys of the files under ``prefix``; links are not followed out of the store."""
    root = os.path.realpath(store.root)
    try:
        base = store.path_of(prefix) if prefix else Path(root)
    except StoreEscapeError:
        return []
    keys = []
    for dirpath, dirnames, filenames in os.walk(base):  # does not descend into linked folders
        rel = os.path.relpath(dirpath, root).replace(os.sep, "/")
        for name in filenames:
            key = name if rel == "." else f"{rel}/{name}"
            try:
                if store.path_of(key).is_file():
                    keys.append(key)
            except StoreEscapeError:
                continue
        dirnames.sort()
    return sorted(keys)


def open_array(store: BeamtimeStore, zarr_group: str, **where: Any) -> Any:
    """Open one array of a beamtime's store read-only (Zarr format 2 or 3).

    Parameters
    ----------
    store : BeamtimeStore
        The beamtime's store.
    zarr_group : str
        Path of the array inside the store (already checked by the caller).
    **where
        ``run``, ``stream``, ``seq_num``, ``field`` for error messages.

    Returns
    -------
    zarr.Array

    Raises
    ------
    StoreEscapeError
        If its metadata is a link out of the store.
    FramesMissingError
        If the store or the array is absent, or the path holds a group.
    FrameDecodeError
        If the array's metadata does not decode.
    """
    import zarr
    import zarr.errors

    root = store.root
    if not root.is_dir():
        raise FramesMissingError(f"Zarr store {root} does not exist", root, **where)
    try:
        return zarr.open_array(store, path=zarr_group, mode="r")
    except StoreEscapeError as exc:
        raise StoreEscapeError(exc.message, root, **where) from None
    except (FileNotFoundError, KeyError, zarr.errors.NodeNotFoundError, zarr.errors.NodeTypeValidationError) as exc:
        raise FramesMissingError(f"array {zarr_group!r} is missing from the store ({exc})", root, **where) from exc
    except Exception as exc:  # noqa: BLE001 - whatever Zarr makes of broken metadata is one error for the user
        raise FrameDecodeError(
            f"array {zarr_group!r} has metadata Zarr cannot read: {type(exc).__name__}: {exc}", root, **where
        ) from exc


def _read_range(fh: Any, byte_range: Any) -> bytes:
    if byte_range is None:
        return bytes(fh.read())
    if isinstance(byte_range, RangeByteRequest):
        fh.seek(byte_range.start)
        data = bytes(fh.read(byte_range.end - byte_range.start))
        if len(data) < byte_range.end - byte_range.start:  # a shard index pointing past the end of its file
            raise EOFError(f"bytes {byte_range.start}-{byte_range.end} asked for, the file ends at {byte_range.start + len(data)}")
        return data
    if isinstance(byte_range, OffsetByteRequest):
        fh.seek(byte_range.offset)
    elif isinstance(byte_range, SuffixByteRequest):
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - byte_range.suffix))
    else:
        raise TypeError(f"unexpected byte range {byte_range!r}")
    return bytes(fh.read())
