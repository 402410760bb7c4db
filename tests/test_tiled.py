"""Beamtimes served by tiled: in process through tiled's test client, and one real server."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from conftest import IMAGE_KEYS, T0, write_nexafs, write_rsoxs

pytest.importorskip("tiled.server")

from tiled.client import Context, from_context, from_uri  # noqa: E402
from tiled.client.utils import ClientError  # noqa: E402
from tiled.queries import Comparison, Contains, Eq, FullText, In, KeyLookup, NotEq  # noqa: E402
from tiled.server.app import build_app, build_app_from_config  # noqa: E402

from intake_resonance.beamtime.errors import BeamtimeFormatError  # noqa: E402
from intake_resonance.beamtime.format import Database  # noqa: E402
from intake_resonance.beamtime.frames import FrameStack  # noqa: E402
from intake_resonance.datasets.open import open_run_dataset  # noqa: E402
from intake_resonance.faces.intake_drivers import BeamtimeCatalog  # noqa: E402
from intake_resonance.faces.tiled import beamtime_tree, folder_tree  # noqa: E402
from intake_resonance.tools.writer import BeamtimeWriter  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:Using `httpx` with `starlette.testclient`")


# --------------------------------------------------------------------- helpers
def tree_hash(db: Path) -> str:
    """Hash of the .db, its journal/WAL neighbours and the whole .zarr tree."""
    h = hashlib.sha256()
    files = [db, db.with_name(db.name + "-journal"), db.with_name(db.name + "-wal")]
    store = db.with_suffix(".zarr")
    files += sorted(p for p in store.rglob("*") if p.is_file()) if store.exists() else []
    for f in files:
        h.update(str(f.relative_to(db.parent)).encode())
        h.update(f.read_bytes() if f.exists() else b"<absent>")
    return h.hexdigest()


@contextmanager
def served(tree: Any, structure_clients: str = "numpy") -> Iterator[Any]:
    """A tiled client talking to ``tree`` in this process."""
    with Context.from_app(build_app(tree)) as ctx:
        yield from_context(ctx, structure_clients=structure_clients)


class FrameSpy:
    """Counts frames read from the store (any thread of this process)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.frames = 0
        original = FrameStack.__getitem__

        def spy(stack: FrameStack, key: Any) -> np.ndarray:
            out = original(stack, key)
            self.frames += out.shape[0] if out.ndim == 3 else 1
            return out

        monkeypatch.setattr(FrameStack, "__getitem__", spy)


def write_gappy(w: BeamtimeWriter, t0: float) -> tuple[str, np.ndarray]:
    """A run whose second event lacks a reading and a frame; a string column."""
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 100, size=(4, 6, 5), dtype=np.int32)
    keys = {**IMAGE_KEYS, "note": {"dtype": "string", "source": "plan"}}
    uid = w.open_run("rsoxs", sample="PMMA", time=t0, operator="carol", metadata={"edge": "N", "tags": ["thin", "annealed"]})
    w.open_stream("primary", keys, time=t0)
    for i in range(4):
        data: dict[str, Any] = {"energy_position": 400.0 + i, "note": f"n{i}"}
        if i != 1:
            data["exposure"] = 0.5
        ev = w.write_event(data, time=t0 + 1 + i)
        if i != 1:
            w.write_image(ev, "detector_image", frames[i])
    w.close_run("success", time=t0 + 10)
    return uid, frames


@pytest.fixture(scope="module")
def bt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A beamtime of four runs (one still open); its hash must not change."""
    path = tmp_path_factory.mktemp("served") / "bt.db"
    out: dict[str, Any] = {"path": path}
    with BeamtimeWriter(path, seed=11) as w:
        out["nexafs"], _ = write_nexafs(w, T0)
        out["rsoxs"], _, out["frames"] = write_rsoxs(w, T0 + 100)
        out["gappy"], out["gappy_frames"] = write_gappy(w, T0 + 200)
        out["open"] = w.open_run("scan", sample="PS", time=T0 + 300)
        w.close()  # the last run stays open, as while the beamline writes
    before = tree_hash(path)
    yield out
    assert tree_hash(path) == before, "serving changed the beamtime"


@pytest.fixture(scope="module")
def client(bt: dict[str, Any]) -> Iterator[Any]:
    with served(beamtime_tree(bt["path"])) as c:
        yield c


def assert_same_dataset(remote: xr.Dataset, local: xr.Dataset) -> None:
    assert set(remote.variables) == set(local.variables)
    for name, var in local.variables.items():
        got = remote[name]
        assert got.dims == var.dims, name
        assert dict(got.attrs) == dict(var.attrs), name
        if var.dtype.kind in "OU":  # text (tiled's client gives pandas strings); gaps served as ""
            assert [str(v) for v in got.values] == ["" if v is None else str(v) for v in var.values], name
        else:
            assert got.dtype == var.dtype, name
            np.testing.assert_array_equal(got.values, var.values)
    # the server's directories stay private: the beamtime is named by its file
    assert dict(remote.attrs) == dict(local.attrs)


# ------------------------------------------------------------------- listing
def test_runs_listed_as_our_catalog_lists_them(bt: dict[str, Any], client: Any) -> None:
    cat = BeamtimeCatalog(str(bt["path"]))
    try:
        expected = list(cat)
    finally:
        cat.close()
    assert list(client) == expected == [bt["nexafs"], bt["rsoxs"], bt["gappy"], bt["open"]]
    assert len(client) == 4
    assert client.values()[-1].metadata["uid"] == bt["open"]  # newest last, reversed on the server
    assert list(client.keys()[1:3]) == expected[1:3]
    run = client[bt["rsoxs"][:8]]  # a unique prefix finds the run
    assert run.metadata["uid"] == bt["rsoxs"]
    with pytest.raises(KeyError):
        client["ffffffff"]


def test_run_metadata_and_streams(bt: dict[str, Any], client: Any) -> None:
    run = client[bt["nexafs"]]
    assert list(run) == ["baseline", "primary"]
    meta = run.metadata
    assert meta["plan_name"] == "nexafs" and meta["sample_name"] == "PS" and meta["operator"] == "alice"
    assert meta["time_start"] == T0 and meta["exit_status"] == "success" and meta["num_events"] == 9
    # Bluesky-like documents, so start.plan_name etc. read as users expect
    assert meta["start"]["uid"] == bt["nexafs"] and meta["start"]["plan_name"] == "nexafs"
    assert meta["start"]["edge"] == "C" and meta["start"]["time"] == T0
    assert meta["stop"]["exit_status"] == "success" and meta["stop"]["run_start"] == bt["nexafs"]
    assert meta["sample"]["name"] == "PS"
    assert client[bt["open"]].metadata["stop"] is None


# --------------------------------------------------------------------- data
@pytest.mark.parametrize(("run", "stream"), [("nexafs", "primary"), ("nexafs", "baseline"), ("rsoxs", "primary"), ("gappy", "primary")])
def test_stream_equals_open_run_dataset(bt: dict[str, Any], client: Any, run: str, stream: str) -> None:
    remote = client[bt[run]][stream].read()
    with Database(bt["path"]) as db:
        local = open_run_dataset(db, bt[run], stream).load()
    assert_same_dataset(remote, local)


def test_gaps_are_nan(bt: dict[str, Any], client: Any) -> None:
    ds = client[bt["gappy"]]["primary"].read()
    frames = ds.detector_image.values
    assert frames.dtype == np.float64 and np.isnan(frames[1]).all()
    np.testing.assert_array_equal(frames[[0, 2, 3]], bt["gappy_frames"][[0, 2, 3]])
    assert np.isnan(ds.exposure.values[1]) and ds.exposure.values[0] == 0.5


def test_one_block_reads_only_its_frame(bt: dict[str, Any], client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    arr = client[bt["rsoxs"]]["primary"]["detector_image"]
    assert arr.chunks[0] == (1,) * 5  # one frame per block
    spy = FrameSpy(monkeypatch)
    np.testing.assert_array_equal(arr.read_block((3, 0, 0)), bt["frames"][3:4])
    assert spy.frames == 1
    np.testing.assert_array_equal(arr[1:3], bt["frames"][1:3])
    assert spy.frames == 3
    np.testing.assert_array_equal(arr.read(), bt["frames"])
    assert spy.frames == 8


def test_dask_client_reads_lazily(bt: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    spy = FrameSpy(monkeypatch)
    with served(beamtime_tree(bt["path"]), structure_clients="dask") as c:
        ds = c[bt["rsoxs"]]["primary"].read()
        assert spy.frames == 0
        assert ds.detector_image.chunks is not None
        np.testing.assert_array_equal(ds.detector_image.values, bt["frames"])
        assert spy.frames == 5


def test_renamed_image_field_served_by_its_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "names.db"
    frames = np.arange(3 * 6 * 5, dtype=np.int32).reshape(3, 6, 5)
    with BeamtimeWriter(path, seed=9) as w:
        uid = w.open_run("rsoxs", time=T0)
        w.open_stream("primary", {"det/1": {"dtype": "int32", "external": True, "shape": [6, 5]}, "time": {"dtype": "number"}}, time=T0)
        for i in range(3):
            ev = w.write_event({"time": 10.0 + i}, time=T0 + 1 + i)
            w.write_image(ev, "det/1", frames[i])
    with Database(path) as db:
        local = open_run_dataset(db, uid).load()
    spy = FrameSpy(monkeypatch)
    with served(beamtime_tree(path)) as c:
        node = c[uid]["primary"]
        assert_same_dataset(node.read(), local)  # the builder's names, dims and attrs
        (image,) = [name for name in node if len(node[name].shape) == 3]
        spy.frames = 0
        np.testing.assert_array_equal(node[image].read_block((2, 0, 0)), frames[2:3])
        assert spy.frames == 1  # read through the field's FrameStack, one frame


# ------------------------------------------------------------------- search
@pytest.fixture
def opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every run opened as a Dataset, by uid."""
    import intake_resonance.faces.tiled.streams as streams

    seen: list[str] = []
    original = streams.open_run_dataset

    def counting(db: Any, uid: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(uid)
        return original(db, uid, *args, **kwargs)

    monkeypatch.setattr(streams, "open_run_dataset", counting)
    return seen


def test_search_runs_in_sql_and_opens_no_run(bt: dict[str, Any], opens: list[str]) -> None:
    cat = BeamtimeCatalog(str(bt["path"]))
    try:
        with served(beamtime_tree(bt["path"])) as c:
            cases = [
                (Eq("plan_name", "rsoxs"), cat.search(plan_name="rsoxs")),
                (Eq("start.plan_name", "nexafs"), cat.search(plan_name="nexafs")),
                (In("sample_name", ["PS", "PMMA"]), cat.search(sample=["PS", "PMMA"])),
                (Comparison("ge", "time_start", T0 + 100), cat.search(since=T0 + 100)),
                (Comparison("lt", "start.time", "2026-03-05T08:43:00"), cat.search(until="2026-03-05T08:43:00")),
                (FullText("carol"), cat.search(text="carol")),
                (Eq("edge", "C"), cat.search(edge="C")),
                (Eq("metadata.edge", "N"), cat.search(edge="N")),
                (Eq("exit_status", None), cat.search(exit_status=None)),
            ]
            for query, expected in cases:
                found = c.search(query)
                assert list(found) == list(expected), query
                assert [v.metadata["uid"] for v in found.values()] == list(expected), query
            # criteria SQL cannot express filter the runs table, still no run opened
            assert list(c.search(Contains("tags", "annealed"))) == [bt["gappy"]]
            assert list(c.search(In("metadata.edge", ["N", "X"]))) == [bt["gappy"]]
            # chained searches narrow further, a key lookup answers within them
            chained = c.search(Eq("plan_name", "rsoxs")).search(Eq("sample_name", "PMMA"))
            assert list(chained) == [bt["gappy"]]
            assert list(c.search(Eq("plan_name", "rsoxs")).search(KeyLookup(bt["rsoxs"]))) == [bt["rsoxs"]]
            assert list(c.search(Eq("plan_name", "rsoxs")).search(KeyLookup(bt["nexafs"]))) == []
            assert bt["rsoxs"] not in c.search(Eq("plan_name", "nexafs"))
            # the newest match first when reversed
            assert c.search(Eq("plan_name", "rsoxs")).values()[-1].metadata["uid"] == bt["gappy"]
        assert opens == []
    finally:
        cat.close()


def test_unsupported_search_is_a_clear_400(bt: dict[str, Any], client: Any) -> None:
    with pytest.raises(ClientError) as info:
        list(client.search(Eq("num_events", 5)))
    assert info.value.response.status_code == 400
    assert "cannot search runs by 'num_events'" in str(info.value)
    with pytest.raises(ClientError) as info:
        list(client.search(NotEq("plan_name", "rsoxs")))
    assert info.value.response.status_code == 400


# --------------------------------------------------------------- live files
def test_new_runs_and_growing_runs_appear(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    with BeamtimeWriter(path, seed=5) as w:
        first, _ = write_nexafs(w, T0)
    with served(beamtime_tree(path, ttl=0.2)) as c:
        assert list(c) == [first]
        w = BeamtimeWriter(path, seed=6).open()
        try:
            live = w.open_run("rsoxs", sample="PS", time=T0 + 50)
            w.open_stream("primary", IMAGE_KEYS, time=T0 + 50)
            ev = w.write_event({"energy_position": 1.0, "exposure": 0.1}, time=T0 + 51)
            w.write_image(ev, "detector_image", np.ones((6, 5), dtype=np.int32))
            w.open_stream("baseline", {"x": {"dtype": "number"}}, time=T0 + 52)  # commits the events so far
            time.sleep(0.25)  # the listing is reused for ttl seconds
            assert list(c) == [first, live]
            assert c[live].metadata["stop"] is None
            assert c[live]["primary"].read().sizes["time"] == 1
            w.close_run("success", time=T0 + 60)
        finally:
            w.close()
        time.sleep(0.25)
        assert c[live].metadata["exit_status"] == "success"


def test_replaced_and_deleted_beamtime_noticed(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path, seed=1) as w:
        old, _ = write_nexafs(w, T0)
    other = tmp_path / "other" / "bt.db"
    with BeamtimeWriter(other, seed=2) as w:
        new, _, frames = write_rsoxs(w, T0)
    with served(beamtime_tree(path, ttl=0)) as c:
        assert list(c) == [old]
        # rsync-style replacement: new files renamed over the old names
        shutil.rmtree(path.with_suffix(".zarr"))
        os.replace(other.with_suffix(".zarr"), path.with_suffix(".zarr"))
        os.replace(other, path)
        assert list(c) == [new]
        np.testing.assert_array_equal(c[new]["primary"]["detector_image"][2], frames[2])
        path.unlink()
        with pytest.raises(ClientError) as info:
            list(c)
        assert info.value.response.status_code == 404
        assert "bt.db: beamtime database does not exist" in str(info.value)
        assert str(path.parent) not in str(info.value)  # named without the server's folders


# ------------------------------------------------------------- hostile files
def test_hostile_files_give_http_errors_with_our_message(tmp_path: Path) -> None:
    good = tmp_path / "good.db"
    with BeamtimeWriter(good, seed=3) as w:
        nexafs, _ = write_nexafs(w, T0)
        rsoxs, _, _ = write_rsoxs(w, T0 + 100)
        garbled, _, garbled_frames = write_rsoxs(w, T0 + 200, seed=4)
    (tmp_path / "garbage.db").write_bytes(b"not a beamtime at all" * 10)
    chunk = good.with_suffix(".zarr") / "runs" / garbled / "detector_image" / "c" / "1" / "0" / "0"
    chunk.write_bytes(b"\x28\xb5\x2f\xfd garbled")  # a zstd magic, then nonsense
    with closing(sqlite3.connect(good)) as conn, conn:  # one event's JSON broken, one frame array gone
        conn.execute(
            "UPDATE events SET data = '{broken' WHERE seq_num = 3 AND stream_uid IN "
            "(SELECT uid FROM streams WHERE run_uid = ? AND name = 'primary')",
            (nexafs,),
        )
    conn.close()
    shutil.rmtree(good.with_suffix(".zarr") / "runs" / rsoxs / "detector_image")
    before = tree_hash(good)

    with served(folder_tree(tmp_path, ttl=0)) as c:
        assert list(c) == ["garbage", "good"]
        assert list(c.keys()[::-1]) == ["good", "garbage"]
        with pytest.raises(ClientError) as info:
            list(c.search(FullText("good")))  # searches happen inside a beamtime
        assert info.value.response.status_code == 400
        listed = dict(c.items())  # a broken beamtime still lists, its error in the metadata
        assert "not a SQLite database" in listed["garbage"].metadata["error"]
        with pytest.raises(ClientError) as info:
            list(c["garbage"])
        assert info.value.response.status_code == 422
        assert "garbage.db" in str(info.value) and "not a SQLite database" in str(info.value)
        assert str(tmp_path) not in str(info.value)  # no server path reaches the client

        with pytest.raises(ClientError) as info:
            c["good"][nexafs]["primary"].read()
        assert info.value.response.status_code == 422
        assert "seq_num 3" in str(info.value) and nexafs in str(info.value)

        arr = c["good"][rsoxs]["primary"]["detector_image"]
        with pytest.raises(ClientError) as info:
            arr.read_block((0, 0, 0))
        assert info.value.response.status_code == 422
        assert "detector_image" in str(info.value) and "Traceback" not in str(info.value)

        damaged = c["good"][garbled]["primary"]["detector_image"]
        np.testing.assert_array_equal(damaged.read_block((0, 0, 0)), garbled_frames[:1])
        with pytest.raises(ClientError) as info:
            damaged.read_block((1, 0, 0))
        assert info.value.response.status_code == 422
        assert "seq_num" in str(info.value) and garbled in str(info.value)
        assert "good.zarr" in str(info.value) and str(tmp_path) not in str(info.value)
    assert tree_hash(good) == before

    with pytest.raises(BeamtimeFormatError):
        beamtime_tree(tmp_path / "garbage.db")


def test_whole_beamtime_download_refused(bt: dict[str, Any], client: Any) -> None:
    response = client.context.http_client.get("/api/v1/container/full/", params={"format": "application/json"})
    assert response.status_code == 400
    assert "read a run's stream" in response.json()["detail"]


# ------------------------------------------------------------ tiled config
def test_tiled_serve_config_entry_points(bt: dict[str, Any]) -> None:
    config = {
        "trees": [
            {"path": "/bt", "tree": "intake_resonance.faces.tiled:beamtime_tree", "args": {"path": str(bt["path"])}},
            {"path": "/folder", "tree": "intake_resonance.faces.tiled:folder_tree", "args": {"folder": str(bt["path"].parent), "ttl": 5}},
        ],
        "access_control": {"access_policy": "intake_resonance.faces.tiled:KeyRequired", "args": {}},
        "authentication": {"allow_anonymous_access": False},  # tiled keeps settings process-wide: say it
    }
    with Context.from_app(build_app_from_config(config)) as ctx:
        c = from_context(ctx)
        assert list(c["bt"])[:2] == [bt["nexafs"], bt["rsoxs"]]
        np.testing.assert_array_equal(c["folder"]["bt"][bt["rsoxs"]]["primary"]["detector_image"][4], bt["frames"][4])
        zarr_chunk = f"/zarr/v3/bt/{bt['rsoxs']}/primary/detector_image/c/4/0/0"
        assert ctx.http_client.get(zarr_chunk).status_code == 200
        anonymous = ctx.http_client.get(zarr_chunk, headers={"Authorization": ""})
        assert anonymous.status_code == 404  # KeyRequired: tiled's /zarr routes need the key too


# --------------------------------------------------------------- real server
def test_serve_command(bt: dict[str, Any]) -> None:
    import httpx
    from served import running_server

    key = f"{secrets.token_urlsafe(24)}-_"  # as people make keys; tiled alone refuses '-'
    log: list[str] = []
    with running_server(bt["path"], log, args=["--api-key", key]) as (url, proc):
        assert httpx.get(f"{url}/api/v1/metadata/", timeout=5).status_code == 401
        # tiled's own /zarr routes check no key; our guard stands in front of them too
        for route in (f"zarr/v3/{bt['rsoxs']}/primary/zarr.json", f"zarr/v3/{bt['rsoxs']}/primary/detector_image/c/0/0/0"):
            assert httpx.get(f"{url}/{route}", timeout=5).status_code == 401
            assert httpx.get(f"{url}/{route}", params={"api_key": key}, timeout=5).status_code == 200

        c = from_uri(url, api_key=key)
        try:
            frame = c[bt["rsoxs"]]["primary"]["detector_image"][2]
        finally:
            c.context.close()
        np.testing.assert_array_equal(frame, bt["frames"][2])

        ds = xr.open_zarr(
            f"{url}/zarr/v3/{bt['rsoxs']}/primary",
            consolidated=False,
            storage_options={"headers": {"Authorization": f"Apikey {key}"}},
        )
        np.testing.assert_array_equal(ds.detector_image[2].values, bt["frames"][2])
        assert ds.detector_image.chunks[0] == (1,) * 5
        np.testing.assert_array_equal(ds.energy_position.values, [285.0, 286.0, 287.0, 288.0, 289.0])
    rc, err = proc.returncode, log[0]
    assert rc == 0, err
    assert f"at {url}" in err and "API key: (from --api-key)" in err and "stopped" in err
    assert "Traceback" not in err


def test_serve_refuses_bad_input(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from intake_resonance.tools.cli import cli

    (tmp_path / "x.db").write_bytes(b"garbage" * 20)
    runner = CliRunner()
    result = runner.invoke(cli, ["serve", str(tmp_path / "x.db")], catch_exceptions=False)
    assert result.exit_code == 2 and "not a SQLite database" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    with BeamtimeWriter(tmp_path / "ok.db") as w:
        write_nexafs(w, T0)
    result = runner.invoke(cli, ["serve", str(tmp_path / "ok.db"), "--api-key", "not ok at all"], catch_exceptions=False)
    assert result.exit_code == 2 and "' ': only printable ASCII without spaces" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_folder_keys_never_reach_outside_the_folder(tmp_path: Path) -> None:
    folder, outside = tmp_path / "served", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    with BeamtimeWriter(folder / "good.db", seed=3) as w:
        write_nexafs(w, T0)
    with BeamtimeWriter(outside / "secret.db", seed=4) as w:
        write_nexafs(w, T0)
    tree = folder_tree(folder, ttl=60)
    assert list(tree) == ["good"]
    for key in ("../outside/secret", "..", ".", "", "/" + str(outside / "secret"), "good\0"):
        with pytest.raises(KeyError):
            tree[key]
    with BeamtimeWriter(folder / "new.db", seed=5) as w:  # written after the listing: still found by its stem
        write_nexafs(w, T0)
    assert tree["new"] is tree["new"]
    tree.close()
