"""A served answer is bounded as a whole, and a format the server cannot make is a 406, never a 500.

In process, through the app ``intake-resonance serve`` runs (its key guard
and format note included), with a small ``max_bytes``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import T0

pytest.importorskip("tiled")
from starlette.testclient import TestClient  # noqa: E402

from intake_resonance.faces.tiled import build_server  # noqa: E402
from intake_resonance.tools.writer import BeamtimeWriter  # noqa: E402

KEY = "k" * 16


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[TestClient, str]:
    path = tmp_path_factory.mktemp("bt") / "bt.db"
    with BeamtimeWriter(path) as w:
        uid = w.open_run("rsoxs", time=T0)
        w.open_stream("primary", {}, time=T0)
        for i in range(30):
            note = "x" * (200_000 if i == 3 else 3)  # one long string among short ones
            ev = w.write_event({"e": 1.0 * i, "note": note}, time=T0 + i)
            w.write_image(ev, "a", np.ones((60, 60), np.int32))
            w.write_image(ev, "b", np.ones((50, 70), np.int32))  # a second field: flattening multiplies the dims
        w.close_run("success", time=T0 + 40)
    app, _, _ = build_server(path, api_key=KEY, max_bytes=2**20)
    client = TestClient(app, raise_server_exceptions=False, headers={"Authorization": f"Apikey {KEY}"})
    return client, uid


def _get(served: tuple[TestClient, str], route: str, **params: Any) -> Any:
    client, uid = served
    return client.get(f"/api/v1/{route}/{uid}/primary", params=params)


@pytest.mark.parametrize("fmt", ["application/json", "text/csv", None])
def test_a_flattened_answer_is_bounded_as_a_whole(served: tuple[TestClient, str], fmt: str | None) -> None:
    answer = _get(served, "container/full", **({"format": fmt} if fmt else {}))
    assert answer.status_code == 413 and "more than this server's limit of 1048576" in answer.json()["detail"]


def test_binary_formats_count_the_arrays_bytes_and_refuse_what_they_cannot_hold(served: tuple[TestClient, str]) -> None:
    text = _get(served, "container/full", format="application/x-hdf5")
    assert text.status_code == 406 and "text columns" in text.json()["detail"]
    numbers = _get(served, "container/full", format="application/x-hdf5", field=["e", "a"])
    assert numbers.status_code == 200 and numbers.content[:4] == b"\x89HDF"
    assert _get(served, "container/full", format="application/x-hdf5", field=["a", "b"]).status_code == 200


def test_a_long_text_column_costs_nothing_until_read_and_then_is_bounded(served: tuple[TestClient, str]) -> None:
    client, uid = served
    meta = client.get(f"/api/v1/metadata/{uid}/primary/note")
    assert meta.status_code == 200
    assert meta.json()["data"]["attributes"]["structure"]["data_type"]["itemsize"] == 4 * 200_000
    whole = client.get(f"/api/v1/array/full/{uid}/primary/note")
    assert whole.status_code == 413 and "ask for fewer rows" in whole.json()["detail"]
    short = client.get(f"/api/v1/array/full/{uid}/primary/note", params={"slice": "0:2", "format": "application/json"})
    assert short.status_code == 413  # the column is as wide as its longest value: 2 rows of 800 kB pass 1 MiB too


def test_no_server_path_in_any_answer(tmp_path: Path) -> None:
    from hostile import image_array, small_beamtime

    bt = small_beamtime(tmp_path)
    secret = tmp_path / "private" / "elsewhere.bin"
    secret.parent.mkdir()
    secret.write_bytes(b"\0" * 120)
    chunk = image_array(bt) / "c" / "1" / "0" / "0"
    chunk.unlink()
    chunk.symlink_to(secret)  # a link out of the store
    broken = bt.path.parent / "broken.db"
    broken.write_bytes(b"not a database at all, just text" * 4)
    for served in (bt.path, bt.path.parent):  # one beamtime, and its folder
        app, _, _ = build_server(served, api_key=KEY)
        client = TestClient(app, raise_server_exceptions=False, headers={"Authorization": f"Apikey {KEY}"})
        base = f"/api/v1/array/full/{'' if served == bt.path else 'beamtime/'}{bt.uids['rsoxs']}/primary/detector_image"
        answer = client.get(base, params={"slice": "1"})
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"]
        assert "outside the Zarr store" in detail and str(tmp_path) not in detail and "<a path on the server>" in detail
        if served != bt.path:
            listing = client.get("/api/v1/search/", params={"fields": "metadata"}).text
            assert "broken" in listing and str(tmp_path) not in listing
