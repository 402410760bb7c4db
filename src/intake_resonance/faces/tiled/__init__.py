"""Beamtimes served over HTTP by tiled: adapters for tiled's server.

A beamtime becomes a container of runs (oldest first, keyed by uid), a run a
container of its streams, a stream tiled's xarray dataset (``time``,
``seq_num``, one array per scalar field, one chunked array per image field).
A folder of beamtimes becomes a container of beamtimes keyed by file stem.
Nothing is copied: every request reads the ``.db`` and ``.zarr`` in place,
read-only, through the package's own layers (:mod:`.records`,
:func:`..dataset.open_run_dataset`, :class:`..frames.FrameStack`).

Entry points for ``tiled serve config``::

    trees:
      - path: /
        tree: intake_resonance.faces.tiled:beamtime_tree
        args: {path: /data/2026-03/bt.db}

Behaviour
---------
- Listing and search never open a run: the runs container asks SQL for uids
  (:func:`.records.list_uids`) and builds a run's node only when a page of
  the listing or a request names it. tiled queries become a
  :class:`.records.RunQuery` through this container's own query registry.
- A frame block (one frame per block) reads only its own frames.
- Fresh: the uid listing is that of the newest commit (as in every face,
  through :class:`~intake_resonance.datasets.runset.RunSet`), and the nodes
  of runs still open are re-read when older than ``ttl`` (default 1 s), so
  runs written by the beamline appear at once, and open runs grow, without
  restarting the server.
  Nodes of closed runs do not change and stay cached (a few, LRU).
- The ``.db`` is checked (``stat``) on every request: a file replaced under
  the same name (rsync lands a new inode) is reopened and the caches dropped;
  a deleted one answers 404 with our message.
- :func:`build_server` (what ``intake-resonance serve`` runs) puts
  :class:`.guard.KeyGuard` in front of every route, websockets included: any
  key :func:`.guard.check_api_key` accepts, in the header or the query.
- A frame read of more than ``max_bytes`` (default 256 MiB) answers 413
  before any frame is read.
- Every :class:`.errors.BeamtimeError` reaches the client as an HTTP error
  whose detail is our one-line message (404 for what does not exist, 422 for
  a file or row that is broken), never as a server traceback.

The package imports tiled; it is only imported when used (``pip install
'intake-resonance[tiled]'``). Modules: :mod:`.containers` (beamtime and
folder), :mod:`.streams` (run and stream nodes, frames), :mod:`.search`
(queries), :mod:`._http` (errors as HTTP answers), :mod:`.guard` (the key).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ._bounded import AnswerFormat
from ._http import KeyRequired
from .containers import DEFAULT_CACHE_SIZE, DEFAULT_TTL, BeamtimeAdapter
from .folder import FolderAdapter
from .guard import MIN_KEY_LENGTH, KeyGuard, check_api_key
from .streams import DEFAULT_MAX_BYTES, FrameArrayAdapter

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TTL",
    "MIN_KEY_LENGTH",
    "BeamtimeAdapter",
    "FolderAdapter",
    "FrameArrayAdapter",
    "KeyGuard",
    "KeyRequired",
    "beamtime_tree",
    "build_server",
    "check_api_key",
    "folder_tree",
]


def beamtime_tree(
    path: str | os.PathLike[str],
    ttl: float = DEFAULT_TTL,
    cache_size: int = DEFAULT_CACHE_SIZE,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> BeamtimeAdapter:
    """The tiled tree of one beamtime (for ``tiled serve config`` or ``build_app``).

    Parameters
    ----------
    path : str or Path
        The beamtime's ``.db``.
    ttl : float
        Seconds within which new runs appear (default 1).
    cache_size : int
        Stream datasets kept built.
    max_bytes : int
        Largest frame read one request may ask for (default 256 MiB; larger: 413).

    Raises
    ------
    BeamtimeError
        The file does not exist or is not a beamtime (checked once at start).
    """
    tree = BeamtimeAdapter(path, ttl=ttl, cache_size=cache_size, max_bytes=max_bytes)
    tree._source.db()  # refuse a missing or broken file before serving it
    return tree


def folder_tree(
    folder: str | os.PathLike[str],
    ttl: float = DEFAULT_TTL,
    cache_size: int = DEFAULT_CACHE_SIZE,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> FolderAdapter:
    """The tiled tree of a folder of beamtimes, keyed by file stem.

    Parameters
    ----------
    folder : str or Path
        The folder holding ``NAME.db`` + ``NAME.zarr`` pairs.
    ttl : float
        Seconds within which new files and runs appear (default 1).
    cache_size : int
        Stream datasets kept built per beamtime.
    max_bytes : int
        Largest frame read one request may ask for (default 256 MiB; larger: 413).
    """
    return FolderAdapter(folder, ttl=ttl, cache_size=cache_size, max_bytes=max_bytes)



# ---------------------------------------------------------------------- serving
#: tiled's own environment variable for the single-user API key.
API_KEY_ENV = "TILED_SINGLE_USER_API_KEY"


def build_server(
    path: str | os.PathLike[str],
    *,
    api_key: str | None = None,
    public: bool = False,
    ttl: float = DEFAULT_TTL,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[Any, str, str]:
    """A tiled web app serving a beamtime ``.db`` or a folder of them, every route behind the key.

    Parameters
    ----------
    path : str or Path
        A beamtime's ``.db``, or a folder of beamtimes.
    api_key : str, optional
        The key clients present; default: tiled's environment variable
        ``TILED_SINGLE_USER_API_KEY``, else a new random key. Any key
        :func:`.guard.check_api_key` accepts (8+ printable ASCII characters,
        as ``secrets.token_urlsafe()`` makes).
    public : bool
        Let anyone who can connect read without a key (a wrong key is still refused).
    ttl : float
        Seconds within which new runs (and files) appear.
    max_bytes : int
        Largest frame read one request may ask for (default 256 MiB); larger
        is answered 413 before a frame is read.

    Returns
    -------
    app : fastapi.FastAPI
        Run it with any ASGI server (``uvicorn.run(app, host=..., port=...)``).
    api_key : str
    key_source : str
        ``"option"``, ``"environment"`` or ``"generated"``.

    Raises
    ------
    BeamtimeError
        A missing or broken ``.db``, or a folder that does not exist.
    ValueError
        An empty, too short or non-ASCII key (one line, naming where it came from).
    """
    import secrets

    from tiled.config import Authentication
    from tiled.server.app import build_app

    from ._compression import compression_registry

    if api_key is not None:
        api_key, source = check_api_key(api_key, "--api-key"), "option"
    elif API_KEY_ENV in os.environ:
        api_key, source = check_api_key(os.environ[API_KEY_ENV], f"${API_KEY_ENV}"), "environment"
    else:
        api_key, source = secrets.token_urlsafe(32), "generated"
    target = Path(path).expanduser()
    tree: Any = (
        folder_tree(target, ttl=ttl, max_bytes=max_bytes)
        if target.is_dir()
        else beamtime_tree(target, ttl=ttl, max_bytes=max_bytes)
    )
    # KeyGuard is the door: it checks the client's key on every route and
    # hands tiled a key of its own (letters and digits, as tiled wants).
    # Behind the door tiled allows anonymous reads, so its "about" answer says
    # no key is required: tiled's Python client 0.2.20 takes only \w+ as a
    # key and would refuse to connect with a token_urlsafe key ("-")
    # otherwise; the key still travels in its header. KeyRequired: without
    # an access policy tiled 0.2.20 serves its /zarr routes to anyone.
    inner = secrets.token_hex(32)
    app = build_app(
        tree,
        Authentication(single_user_api_key=inner, allow_anonymous_access=True),
        access_policy=KeyRequired(),
        compression_registry=compression_registry(),
    )
    app.add_middleware(AnswerFormat)  # whole answers are bounded by the format asked for (_bounded.py)
    app.add_middleware(KeyGuard, key=api_key, inner_key=inner, public=public)
    return app, api_key, source
