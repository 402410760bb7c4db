"""HTTP for tiled: our errors as 4xx answers, and the access policy that guards every route.

tiled's client shows the detail of a 4xx answer and retries a 5xx one
(dropping its detail), so a broken file is a 422 and a missing one a 404.
What reaches a client names files relative to the folder being served
(``bt.db``, ``bt.zarr/runs/...``): the server's own directories are no one
else's business.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import HTTPException
from tiled.access_control.protocols import AccessPolicy, normalize_access_tags

from ...beamtime.errors import BeamtimeError, BeamtimeNotFoundError, RunNotFoundError, SearchCriterionError

__all__ = ["KeyRequired", "bad_request", "http_error", "one_line", "public_text", "served"]

NOT_FOUND = 404
BAD_REQUEST = 400  # a search naming nothing any run has
BROKEN = 422  # the request is fine, the file or row it names is not


def one_line(exc: BaseException) -> str:
    """The exception's message on one line."""
    return " ".join(str(exc).split())


_ABSOLUTE = re.compile(r"(?<![\w.])/[^\s'\"),;]+")


def public_text(text: str, path: str | os.PathLike[str] | None) -> str:
    """A message as served: the served file's folder left out, any other absolute path (a link's target) hidden.

    No server path reaches a client: files of the beamtime are named
    relative to its folder (``bt.db``, ``bt.zarr/runs/...``), anything else
    as ``<a path on the server>``.
    """
    if path:
        folder = str(Path(path).parent)
        if folder not in ("", ".", os.sep):
            text = text.replace(folder + os.sep, "")
    return _ABSOLUTE.sub("<a path on the server>", text)




def http_error(exc: BeamtimeError) -> HTTPException:
    """404 for what does not exist, 400 for a search no run can answer, 422 for a broken file or row.

    The detail is our message, paths made relative.
    """
    if isinstance(exc, SearchCriterionError):
        status = BAD_REQUEST
    else:
        status = NOT_FOUND if isinstance(exc, (RunNotFoundError, BeamtimeNotFoundError)) else BROKEN
    return HTTPException(status_code=status, detail=public_text(one_line(exc), exc.path))


@contextmanager
def served() -> Iterator[None]:
    """Turn our errors raised inside the block into HTTP errors."""
    try:
        yield
    except BeamtimeError as exc:
        raise http_error(exc) from exc


def bad_request(message: str) -> HTTPException:
    """A 400 answer with ``message``."""
    return HTTPException(status_code=400, detail=message)


class KeyRequired(AccessPolicy):
    """A tiled access policy: every node grants exactly the request's own scopes.

    tiled 0.2.20 checks the API key on its ``/api/v1`` routes, but its
    ``/zarr/v2`` and ``/zarr/v3`` routes only consult an access policy, so
    without one they serve metadata and frames to anyone who can connect.
    With this policy a request without a valid key (on a server that is not
    public) finds nothing there (404); nothing else changes. Name it in a
    ``tiled serve config`` file as ``access_control: {access_policy:
    "intake_resonance.faces.tiled:KeyRequired", args: {}}``.
    """

    async def init_node(self, principal: Any, authn_access_tags: Any, authn_scopes: Any, access_tags: Any = None) -> Any:
        """Never called for read-only trees; grants nothing new."""
        return (False, normalize_access_tags(access_tags or ()))

    async def allowed_scopes(self, node: Any, principal: Any, authn_access_tags: Any, authn_scopes: Any) -> Any:
        """The scopes the request authenticated with (none without a key, read on a public server)."""
        return set(authn_scopes)

    async def filters(self, node: Any, principal: Any, authn_access_tags: Any, authn_scopes: Any, scopes: Any) -> Any:
        """No per-node filtering: a beamtime is shared whole."""
        return []
