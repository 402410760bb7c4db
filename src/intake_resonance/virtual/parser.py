""":class:`ResonanceParser`: one run and stream of a beamtime through VirtualiZarr's parser protocol.

VirtualiZarr 2 opens any source through a *parser*: a callable
``parser(url, registry) -> ManifestStore``. This one takes the beamtime's
``.db`` URL and gives a ManifestStore of one run and stream, the same
Dataset :func:`~intake_resonance.virtual.write.virtualize` writes:

- frame variables reference the chunk files of the beamtime's ``.zarr``
  (``file://`` URLs, read through the registry's store for ``file://``);
- scalar columns and coordinates have no bytes of their own in any file
  (they live in SQLite JSON), so they are encoded here, as xarray writes
  them to Zarr, into an in-memory object store that the parser registers in
  the registry under ``memory://intake-resonance/<token>``. Load them
  (``loadable_variables``) before writing a virtual Dataset anywhere: a
  reference into process memory means nothing to Icechunk.

::

    from obspec_utils.registry import ObjectStoreRegistry
    from obstore.store import LocalStore
    import virtualizarr as vz

    registry = ObjectStoreRegistry({"file://": LocalStore()})
    parser = ResonanceParser(uid, "primary")
    store = parser(Path("bt.db").resolve().as_uri(), registry)      # a ManifestStore
    ds = xr.open_zarr(store, consolidated=False, zarr_format=3)       # the run, every value readable
    vds = store.to_virtual_dataset(loadable_variables=parser.loadable_variables)  # frames virtual, scalars loaded
    vz.open_virtual_dataset(url, registry=registry, parser=parser, loadable_variables=[...])  # the same, in one call
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from ..beamtime import records
from ..beamtime.errors import NotVirtualizableError
from ..beamtime.store import BeamtimeStore
from ..datasets.location import open_database
from .chunks import json_ready, manifest_array, store_url_prefix
from .dataset import encoded_attrs, virtual_run_dataset

__all__ = ["ResonanceParser"]


class ResonanceParser:
    """VirtualiZarr parser of one run and stream of a beamtime.

    Parameters
    ----------
    uid : str
        The run's uid or a unique prefix of 6+ characters.
    stream : str
        The stream (default ``"primary"``).

    Attributes
    ----------
    loadable_variables : list of str
        After a call: the variables that are not frames (scalar columns and
        coordinates), to pass as ``loadable_variables`` so they are loaded
        rather than left as references into memory.
    """

    def __init__(self, uid: str, stream: str = "primary") -> None:
        self.uid = uid
        self.stream = stream
        self.loadable_variables: list[str] = []

    def __repr__(self) -> str:
        return f"ResonanceParser(uid={self.uid!r}, stream={self.stream!r})"

    def __call__(self, url: str, registry: Any) -> Any:
        """Parse run ``uid``/``stream`` of the beamtime at ``url`` into a ManifestStore.

        Parameters
        ----------
        url : str
            The ``.db`` as a ``file://`` URL (or a local path).
        registry : obspec_utils.registry.ObjectStoreRegistry
            Where VirtualiZarr finds stores; it needs one for ``file://`` to
            read frames. The parser registers its in-memory store of the
            scalar columns in it.

        Returns
        -------
        virtualizarr.manifests.ManifestStore

        Raises
        ------
        NotVirtualizableError
            A URL that is not a local file, or frames that do not map (see
            :mod:`intake_resonance.virtual.chunks`).
        BeamtimeError
            Whatever opening the run raises.
        """
        from virtualizarr.manifests import ManifestGroup, ManifestStore

        path = _local_path(url)
        with open_database(path) as db:
            uid = records.resolve_uid(db, self.uid)
            store = BeamtimeStore(db.zarr_path)
            vrun = virtual_run_dataset(db, store, uid, self.stream, store_url_prefix(store))
        ds = vrun.dataset
        scalars = ds.drop_vars(list(vrun.maps))
        token = _token(path, uid, self.stream, ds)
        arrays = _memory_arrays(scalars, f"memory://intake-resonance/{token}", registry)
        for name in vrun.maps:
            arrays[name] = _with_attrs(ds[name].data, ds[name].attrs)
        attrs = {**encoded_attrs(ds.attrs), "coordinates": " ".join(str(c) for c in ds.coords)}
        self.loadable_variables = [str(v) for v in scalars.variables]
        return ManifestStore(group=ManifestGroup(arrays=arrays, attributes=attrs), registry=registry)


def _local_path(url: str) -> Path:
    parsed = urlparse(str(url))
    if parsed.scheme not in ("", "file") or parsed.netloc not in ("", "localhost"):
        raise NotVirtualizableError(f"only a local beamtime (file://) can be parsed, not {url!r}", str(url))
    return Path(unquote(parsed.path) if parsed.scheme else str(url))


def _token(path: Path, uid: str, stream: str, ds: Any) -> str:
    from dask.base import tokenize

    return str(tokenize(os.path.realpath(path), uid, stream, dict(ds.sizes), sorted(map(str, ds.variables))))


def _with_attrs(marr: Any, attrs: dict[Any, Any]) -> Any:
    md = json_ready(marr.metadata.to_dict())
    md["attributes"] = encoded_attrs(attrs)
    return manifest_array(md, marr.manifest)


def _memory_arrays(scalars: Any, prefix: str, registry: Any) -> dict[str, Any]:
    """The scalar variables encoded as xarray writes them to Zarr, as ManifestArrays over an in-memory store."""
    import math

    import obstore
    import zarr
    from obstore.store import MemoryStore
    from virtualizarr.manifests import ChunkManifest

    held: dict[str, Any] = {}
    scalars.to_zarr(zarr.storage.MemoryStore(held), zarr_format=3, consolidated=False, mode="w")
    memory = MemoryStore()
    key_root = urlparse(prefix).path.lstrip("/")
    out: dict[str, Any] = {}
    for name in scalars.variables:
        arr = zarr.open_array(zarr.storage.MemoryStore(held), path=str(name), mode="r")
        md: dict[str, Any] = json_ready(arr.metadata.to_dict())
        attrs: dict[str, Any] = dict(md.get("attributes") or {})
        attrs.pop("coordinates", None)  # the group names its coordinates
        md.update(attributes=attrs, chunk_key_encoding={"name": "default", "configuration": {"separator": "."}})
        grid = tuple(math.ceil(s / c) if c else 0 for s, c in zip(arr.shape, arr.chunks))
        paths: Any = np.full(grid, "", dtype=np.dtypes.StringDType())
        lengths = np.zeros(grid, dtype=np.uint64)
        for coords in np.ndindex(*grid):
            stored = held.get(f"{name}/{arr.metadata.encode_chunk_key(coords)}")
            if stored is None:  # a chunk of fill values only, not stored
                continue
            data = stored.to_bytes()
            key = f"{key_root}/{name}/{'.'.join(map(str, coords))}"
            obstore.put(memory, key, data)
            paths[coords] = f"{prefix}/{name}/{'.'.join(map(str, coords))}"
            lengths[coords] = len(data)
        manifest = ChunkManifest.from_arrays(
            paths=paths, offsets=np.zeros(grid, dtype=np.uint64), lengths=lengths, validate_paths=False
        )
        out[str(name)] = manifest_array(md, manifest)
    registry.register(prefix, memory)
    return out
