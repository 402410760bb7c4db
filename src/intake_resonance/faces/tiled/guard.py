"""The API key: which keys a server accepts, and the guard in front of every route.

tiled 0.2.20 accepts only letters and digits as its single-user key, and
guards its ``/api/v1`` routes but not its ``/zarr`` ones (without an access
policy). :class:`KeyGuard` is an ASGI middleware in front of the whole app:
every HTTP request and every websocket, whatever its route, must carry the
key, as ``Authorization: Apikey KEY`` or as the query parameter
``api_key=KEY`` (percent-encoded, as any query value). A request without it,
or with any other key, is answered 401 before tiled sees it (a websocket is
refused before it is accepted: 401 where the server supports denial
responses, else the 403 of a close before accept). One answer is open to all: ``GET /api/v1/``, tiled's "about" document
(versions, formats, how to authenticate; no node, no path, no data), which
tiled's Python client asks for before it sends any key. A request with the key
reaches tiled carrying tiled's own key instead (a random one made per
server), so tiled's checks stay on behind ours and the user's key may be
any text :func:`check_api_key` accepts.
"""

from __future__ import annotations

import hmac
from urllib.parse import unquote_plus

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["MIN_KEY_LENGTH", "OPEN_ROUTES", "KeyGuard", "check_api_key"]

#: (method, path) answered without a key: tiled's "about" document, which its client reads first.
OPEN_ROUTES = frozenset({("GET", "/api/v1/"), ("HEAD", "/api/v1/")})

#: Shortest key accepted (``secrets.token_urlsafe()`` makes 43 characters).
MIN_KEY_LENGTH = 8
_DENIED = "a valid API key is required (header 'Authorization: Apikey KEY' or query 'api_key=KEY')"


def check_api_key(key: str, source: str = "the API key") -> str:
    """``key`` if a server may use it; else a one-line :class:`ValueError`.

    A key is at least :data:`MIN_KEY_LENGTH` characters of printable ASCII
    without spaces (``!`` to ``~``): what ``secrets.token_urlsafe()``,
    ``secrets.token_hex()`` and ``tiled api_key create`` make, and what an
    HTTP header carries unchanged.

    Parameters
    ----------
    key : str
    source : str
        How the message names where the key came from.
    """
    if len(key) < MIN_KEY_LENGTH:
        what = "is empty" if not key else f"has {len(key)} characters"
        raise ValueError(f"{source} {what}; use at least {MIN_KEY_LENGTH} (python -c 'import secrets; print(secrets.token_urlsafe())')")
    bad = sorted({c for c in key if not "!" <= c <= "~"})
    if bad:
        raise ValueError(f"{source} holds {', '.join(repr(c) for c in bad)}: only printable ASCII without spaces ('!' to '~')")
    return key


class KeyGuard:
    """ASGI middleware: every request needs the key; tiled then sees its own.

    Parameters
    ----------
    app : ASGI app
        What the guard stands in front of (tiled's app).
    key : str
        The key clients present.
    inner_key : str
        tiled's single-user key, put in place of the client's.
    public : bool
        Requests without any key pass (anonymous, as tiled decides); a
        wrong key is still refused.
    """

    def __init__(self, app: ASGIApp, *, key: str, inner_key: str, public: bool = False) -> None:
        self.app = app
        self._key = key.encode()
        self._inner = f"Apikey {inner_key}".encode()
        self._public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass a request with the key (rewritten for tiled); refuse every other one."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)  # lifespan
            return
        presented, headers, query = self._credentials(scope)
        if presented and all(hmac.compare_digest(k, self._key) for k in presented):
            headers.append((b"authorization", self._inner))
        elif presented or not (self._public or self._is_open(scope)):
            await self._deny(scope, receive, send)
            return
        await self.app({**scope, "headers": headers, "query_string": query}, receive, send)

    @staticmethod
    def _is_open(scope: Scope) -> bool:
        path, root = scope.get("path", ""), scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        return scope["type"] == "http" and (scope.get("method", ""), path) in OPEN_ROUTES

    @staticmethod
    def _credentials(scope: Scope) -> tuple[list[bytes], list[tuple[bytes, bytes]], bytes]:
        """Keys the request presents; its headers and query string without them.

        Cookies are dropped too: a single-user server keeps no sessions, and
        a cookie must not carry a key past the guard.
        """
        presented: list[bytes] = []
        headers: list[tuple[bytes, bytes]] = []
        for name, value in scope.get("headers", []):
            lname = name.lower()
            if lname == b"authorization":
                scheme, _, rest = value.strip().partition(b" ")
                # another scheme (a Bearer token, Basic) is no key of ours: refused below
                presented.append(rest.strip() if scheme.lower() == b"apikey" else b"\0")
            elif lname != b"cookie":
                headers.append((name, value))
        kept = []
        for part in scope.get("query_string", b"").split(b"&"):
            name = part.partition(b"=")[0]
            if unquote_plus(name.decode("latin-1")) == "api_key":
                raw = part.partition(b"=")[2].decode("latin-1")
                presented.append(unquote_plus(raw, encoding="utf-8", errors="surrogateescape").encode("utf-8", "surrogateescape"))
            elif part:
                kept.append(part)
        return presented, headers, b"&".join(kept)

    @staticmethod
    async def _deny(scope: Scope, receive: Receive, send: Send) -> None:
        body = orjson.dumps({"detail": _DENIED})
        headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Apikey"),
                   (b"content-length", str(len(body)).encode())]
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 401, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        message: Message = await receive()  # websocket.connect
        if message["type"] != "websocket.connect":
            return
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008, "reason": "API key required"})
