"""Serving that holds: any usable API key, every route of the app behind it, a size limit, and load."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import T0, write_nexafs, write_rsoxs

pytest.importorskip("tiled.server")

from starlette.routing import Mount, WebSocketRoute  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402
from tiled.client import Context, from_context  # noqa: E402

from intake_resonance.faces.tiled import API_KEY_ENV, build_server, check_api_key  # noqa: E402
from intake_resonance.faces.tiled.guard import OPEN_ROUTES  # noqa: E402
from intake_resonance.tools.writer import BeamtimeWriter  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:Using `httpx` with `starlette.testclient`")

KEY = f"-{secrets.token_urlsafe(24)}_"  # a token_urlsafe key, sure to hold '-' and '_'
ODD_KEY = "a-b_c.d~e!f*g(h)i'j$k+l,m;n=o:p@q/r?s#t[u]v%w"


@pytest.fixture(scope="module")
def bt(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("guarded") / "bt.db"
    out: dict[str, Any] = {"path": path}
    with BeamtimeWriter(path, seed=5) as w:
        out["nexafs"], out["nexafs_values"] = write_nexafs(w, T0)
        out["rsoxs"], _, out["frames"] = write_rsoxs(w, T0 + 100)
    return out


# ------------------------------------------------------------------- keys
@pytest.mark.parametrize("key", [KEY, secrets.token_hex(16), ODD_KEY, "12345678"])
def test_keys_people_make_are_accepted(bt: dict[str, Any], key: str) -> None:
    app, got, source = build_server(bt["path"], api_key=key)
    assert (got, source) == (key, "option")
    with Context.from_app(app, api_key=key, headers={"Authorization": f"Apikey {key}"}) as ctx:
        frame = from_context(ctx)[bt["rsoxs"]]["primary"]["detector_image"][1]
    np.testing.assert_array_equal(frame, bt["frames"][1])


@pytest.mark.parametrize("key", ["", "short", "1234567", "with space inside", "tab\tkey-long", "ключ-ключ-ключ"])
def test_unusable_keys_refused_in_one_line(key: str) -> None:
    with pytest.raises(ValueError) as info:
        check_api_key(key, "--api-key")
    assert "\n" not in str(info.value) and str(info.value).startswith("--api-key ")


def test_key_from_environment(bt: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_KEY_ENV, KEY)
    app, got, source = build_server(bt["path"])
    assert (got, source) == (KEY, "environment")
    monkeypatch.setenv(API_KEY_ENV, "")
    with pytest.raises(ValueError, match=re.escape(f"${API_KEY_ENV} is empty")):
        build_server(bt["path"])
    monkeypatch.delenv(API_KEY_ENV)
    _, generated, source = build_server(bt["path"])
    assert source == "generated" and len(generated) >= 40 and check_api_key(generated) == generated


def test_serve_refuses_short_key_in_one_line(bt: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from intake_resonance.tools.cli import cli

    runner = CliRunner()
    for args, env in ((["--api-key", "abc"], {}), ([], {API_KEY_ENV: ""})):
        result = runner.invoke(cli, ["serve", str(bt["path"]), *args], env=env, catch_exceptions=False)
        assert result.exit_code == 2, result.output
        assert len(result.stderr.strip().splitlines()) == 1 and "at least 8" in result.stderr


# ------------------------------------------------------------ every route
def _fill(path: str, run: str) -> str:
    path = path.replace("{path:path}", f"{run}/primary/detector_image").replace("{block:path}", "0/0/0")
    return re.sub(r"\{[^}]+\}", "0", path)


def app_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path template) of every route in the app's route table; method "WS" for a websocket."""
    found: list[tuple[str, str]] = []

    def add(route: Any, path: str) -> None:
        if isinstance(route, WebSocketRoute) or type(route).__name__ == "APIWebSocketRoute":
            found.append(("WS", path))
        elif isinstance(route, Mount):
            found.append(("GET", path.rstrip("/") + "/anything"))
        else:
            found.extend((m, path) for m in sorted(getattr(route, "methods", None) or {"GET"}))

    for route in app.routes:
        if hasattr(route, "effective_route_contexts"):  # FastAPI's included routers
            for ctx in route.effective_route_contexts():
                inner = ctx.starlette_route or ctx.original_route
                add(inner, ctx.path or inner.path)
        else:
            add(route, route.path)
    return found


@pytest.fixture(scope="module")
def guarded(bt: dict[str, Any]) -> Iterator[tuple[Any, TestClient]]:
    app, _, _ = build_server(bt["path"], api_key=KEY)
    with TestClient(app, raise_server_exceptions=False) as http:
        yield app, http


def test_route_table_covers_what_tiled_serves(guarded: tuple[Any, TestClient]) -> None:
    paths = {p for _, p in app_routes(guarded[0])}
    for expected in ("/api/v1/metadata/", "/api/v1/search/", "/api/v1/node/full/", "/api/v1/array/block/",
                     "/api/v1/array/full/", "/api/v1/table/full/", "/api/v1/container/full/", "/zarr/v2/",
                     "/zarr/v3/", "/api/v1/stream/single/", "/healthz", "/docs", "/openapi.json"):
        assert any(p.startswith(expected) for p in paths), expected
    assert ("WS", "/api/v1/stream/single/{path:path}") in app_routes(guarded[0])


def test_every_route_refuses_without_the_key(bt: dict[str, Any], guarded: tuple[Any, TestClient]) -> None:
    app, http = guarded
    routes = app_routes(app)
    assert len(routes) > 40
    wrong = KEY[:-1] + ("A" if KEY[-1] != "A" else "B")
    for method, template in routes:
        url = _fill(template, bt["rsoxs"])
        if (method, url) in OPEN_ROUTES:
            continue
        if method == "WS":
            for kwargs in ({}, {"headers": {"Authorization": f"Apikey {wrong}"}}):
                with pytest.raises(WebSocketDisconnect) as ws_info:
                    with http.websocket_connect(url, **kwargs):
                        pass
                assert getattr(ws_info.value, "status_code", None) == 401, url  # refused before accept
            continue
        attempts: list[dict[str, Any]] = [
            {},
            {"headers": {"Authorization": f"Apikey {wrong}"}},
            {"params": {"api_key": wrong}},
            {"headers": {"Authorization": f"Bearer {KEY}"}},
            {"headers": {"Authorization": f"Apikey {KEY}"}, "params": {"api_key": wrong}},  # both must be right
            {"cookies": {"tiled_api_key": KEY}},
        ]
        for kwargs in attempts:
            r = http.request(method, url, **kwargs)
            assert r.status_code == 401, (method, url, kwargs, r.status_code)
            assert method == "HEAD" or "API key" in r.json()["detail"]
        if method == "GET":
            for kwargs in ({"headers": {"Authorization": f"Apikey {KEY}"}}, {"params": {"api_key": KEY}}):
                r = http.request(method, url, **kwargs)
                assert r.status_code not in (401, 403), (method, url, r.status_code, r.text[:200])


def test_only_the_about_document_is_open(bt: dict[str, Any], guarded: tuple[Any, TestClient]) -> None:
    assert OPEN_ROUTES == {("GET", "/api/v1/"), ("HEAD", "/api/v1/")}  # what tiled's client reads before sending a key
    _, http = guarded
    about = http.get("/api/v1/")
    assert about.status_code == 200 and "api_version" in about.json()
    for secret in (bt["rsoxs"], bt["nexafs"], bt["path"].name, str(bt["path"].parent), KEY):
        assert secret not in about.text
    assert http.get("/api/v1/?x=1").status_code == 200 and http.get("/api/v1/metadata/").status_code == 401


def test_the_key_opens_metadata_frames_and_zarr(bt: dict[str, Any], guarded: tuple[Any, TestClient]) -> None:
    _, http = guarded
    r = http.get(f"/api/v1/array/full/{bt['rsoxs']}/primary/detector_image", params={"api_key": KEY, "slice": "2"},
                 headers={"Accept": "application/octet-stream"})
    assert r.status_code == 200
    np.testing.assert_array_equal(np.frombuffer(r.content, dtype=bt["frames"].dtype).reshape(bt["frames"][2].shape),
                                  bt["frames"][2])
    r = http.get(f"/zarr/v3/{bt['rsoxs']}/primary/detector_image/c/3/0/0", headers={"Authorization": f"apikey {KEY}"})
    assert r.status_code == 200
    meta = http.get(f"/api/v1/metadata/{bt['nexafs']}", params={"api_key": KEY}).json()
    assert meta["data"]["attributes"]["metadata"]["uid"] == bt["nexafs"]
    assert "tiled_api_key" not in http.cookies  # the key is never handed back as a cookie


def test_public_server_reads_without_key_refuses_wrong_one(bt: dict[str, Any]) -> None:
    app, _, _ = build_server(bt["path"], api_key=KEY, public=True)
    with TestClient(app) as http:
        assert http.get(f"/api/v1/metadata/{bt['rsoxs']}").status_code == 200
        assert http.get(f"/api/v1/metadata/{bt['rsoxs']}", params={"api_key": KEY}).status_code == 200
        assert http.get(f"/api/v1/metadata/{bt['rsoxs']}", params={"api_key": "wrong-key-123"}).status_code == 401


# -------------------------------------------------------------- size limit
def test_large_reads_refused_before_reading(bt: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from intake_resonance.beamtime.frames import FrameStack

    frame_bytes = bt["frames"][0].nbytes
    app, _, _ = build_server(bt["path"], api_key=KEY, max_bytes=2 * frame_bytes)
    reads: list[Any] = []
    original = FrameStack.__getitem__
    monkeypatch.setattr(FrameStack, "__getitem__", lambda self, key: reads.append(key) or original(self, key))
    auth = {"Authorization": f"Apikey {KEY}"}
    frames = f"{bt['rsoxs']}/primary/detector_image"
    with TestClient(app) as http:
        for url, params, accept in ((f"/api/v1/array/full/{frames}", {}, "application/octet-stream"),
                                    (f"/api/v1/array/full/{frames}", {"slice": "0:3"}, "application/octet-stream"),
                                    (f"/api/v1/container/full/{bt['rsoxs']}/primary", {}, "application/x-hdf5")):
            r = http.get(url, params=params, headers={**auth, "Accept": accept})
            assert r.status_code == 413, (url, params, r.status_code)
            assert f"limit of {2 * frame_bytes}" in r.json()["detail"]
        assert reads == []  # refused before a frame was read
        r = http.get(f"/api/v1/array/full/{frames}", params={"slice": "0:2"}, headers={**auth, "Accept": "application/octet-stream"})
        assert r.status_code == 200
        got = np.frombuffer(r.content, dtype=bt["frames"].dtype).reshape(bt["frames"][:2].shape)
        np.testing.assert_array_equal(got, bt["frames"][:2])


def test_default_limit_is_documented() -> None:
    from intake_resonance.faces.tiled import DEFAULT_MAX_BYTES

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert DEFAULT_MAX_BYTES == 256 * 2**20 and "256 MiB" in readme and "413" in readme
