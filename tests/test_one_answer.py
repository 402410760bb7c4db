"""One answer through every door: the same questions asked through every face of the same beamtimes.

Faces: intake v1 (``BeamtimeCatalog``), intake 2 (``RunCatalog``), the
``resonance`` xarray engine (a Dataset and a DataTree), ``open_run_tree``,
many-run reads and stacking, tiled (in process), the command line and the
beamline facade. Keys, prefixes, positions, every search name, the runs
table, events, stacks and Datasets must agree, on a closed beamtime and on
one written while the catalogs are open.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from click.testing import CliRunner
from conftest import T0, write_nexafs, write_rsoxs

from intake_resonance import open_run_dataset, open_run_tree
from intake_resonance.beamtime.errors import SearchCriterionError
from intake_resonance.datasets.runset import RunSet
from intake_resonance.faces.facade import Catalog as Facade
from intake_resonance.faces.intake_drivers import BeamtimeCatalog
from intake_resonance.faces.intake_readers import RunCatalog
from intake_resonance.tools.cli import cli
from intake_resonance.tools.writer import BeamtimeWriter


@pytest.fixture
def bt(tmp_path: Path) -> dict[str, Any]:
    """Four runs: two NEXAFS on PS (one by another operator), an RSoXS on P3HT, one without sample, still open."""
    path = tmp_path / "data" / "bt.db"
    with BeamtimeWriter(path, seed=3) as w:
        a, _ = write_nexafs(w, T0)
        b, _, frames = write_rsoxs(w, T0 + 100)
        c, _ = write_nexafs(w, T0 + 200, sample="PS")
        d = w.open_run("scan", sample=None, time=T0 + 300, operator="carol", metadata={"flag": True, "tags": ["x"]})
        w.close()  # the last run stays open
    return {"path": path, "uids": [a, b, c, d], "frames": frames}


def _faces(path: Path) -> dict[str, Any]:
    return {"v1": BeamtimeCatalog(str(path)), "v2": RunCatalog.from_beamtime(path)}


def test_keys_prefixes_and_positions_agree(bt: dict[str, Any]) -> None:
    path, uids = bt["path"], bt["uids"]
    faces = _faces(path)
    runs = RunSet(path)
    assert runs.uids() == uids
    for name, cat in faces.items():
        assert list(cat) == uids, name
        assert len(cat) == 4, name
        assert list(cat.to_dataframe().uid) == uids, name
    assert faces["v1"][-1].uid == faces["v2"][-1].kwargs["uid"] == uids[-1]
    assert faces["v1"][0].uid == faces["v2"][0].kwargs["uid"] == uids[0]
    for uid in uids:
        prefix = uid[:7]
        assert faces["v1"][prefix].uid == faces["v2"][prefix].kwargs["uid"] == runs.key(prefix) == uid
        ds = xr.open_dataset(path, engine="resonance", group=prefix)
        assert ds.attrs["uid"] == uid
    res = CliRunner().invoke(cli, ["show", str(path), uids[1][:7]])
    assert res.exit_code == 0 and res.stdout.splitlines()[0] == f"run {uids[1]}"
    res = CliRunner().invoke(cli, ["ls", str(path)])
    assert [line.split()[0] for line in res.stdout.splitlines()[1:]] == [u[:8] for u in uids]
    with Facade(path) as facade:
        assert [r.uid for r in facade.recent(-1)] == uids[::-1]
    for cat in faces.values():
        with pytest.raises(IndexError):
            cat[4]
        with pytest.raises(KeyError):
            cat["ffffff"]
        with pytest.raises(TypeError):
            cat[True]


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ({"sample": "PS"}, [0, 2]),
        ({"sample_name": "PS"}, [0, 2]),
        ({"plan_name": "rsoxs"}, [1]),
        ({"plan": "rsoxs"}, [1]),
        ({"exit_status": "success"}, [0, 1, 2]),
        ({"status": None}, [3]),
        ({"operator": "carol"}, [3]),
        ({"flag": True}, [3]),
        ({"flag": 1}, []),  # JSON true is not 1
        ({"metadata": {"flag": True}}, [3]),
        ({"since": T0 + 100, "until": T0 + 300}, [1, 2]),
        ({"text": "p3ht"}, [1]),
    ],
)
def test_every_search_name_answers_alike(bt: dict[str, Any], criteria: dict[str, Any], expected: list[int]) -> None:
    path, uids = bt["path"], bt["uids"]
    want = [uids[i] for i in expected]
    for name, cat in _faces(path).items():
        found = cat.search(**criteria)
        assert list(found) == want, name
        assert list(found.to_dataframe().uid) == want, name
        assert list(found.search(**criteria)) == want, name  # narrowing again changes nothing
    assert RunSet(path).narrow(**criteria).uids() == want


@pytest.mark.parametrize("name", ["sampel", "sample_nam", "plan_nme", "statu"])
def test_a_misspelt_search_name_is_an_error_through_every_face(bt: dict[str, Any], name: str) -> None:
    for cat in _faces(bt["path"]).values():
        with pytest.raises(SearchCriterionError, match="sample_name"):
            cat.search(**{name: "PS"})
    res = CliRunner().invoke(cli, ["ls", str(bt["path"]), "--sample", "PS"])
    assert res.exit_code == 0 and len(res.stdout.splitlines()) == 3


def test_tables_events_and_stacks_agree(bt: dict[str, Any]) -> None:
    faces = _faces(bt["path"])
    pd.testing.assert_frame_equal(faces["v1"].to_dataframe(), faces["v2"].to_dataframe())
    pd.testing.assert_frame_equal(faces["v1"].events(), faces["v2"].events())
    nexafs = {k: cat.search(plan_name="nexafs") for k, cat in faces.items()}
    xr.testing.assert_identical(nexafs["v1"].stack(by="uid"), nexafs["v2"].stack(by="uid"))
    stacked = nexafs["v1"].stack()
    for i, uid in enumerate(stacked.run.values):
        one = open_run_dataset(bt["path"], str(uid))
        np.testing.assert_array_equal(stacked.i0.isel(run=i).dropna("event").values, one.i0.values)


def _spellings(path: Path, tmp_path: Path) -> list[str]:
    link = tmp_path / "linked"
    link.symlink_to(path.parent, target_is_directory=True)
    here = Path.cwd()
    relative = os.path.relpath(path, here)
    return [str(path), relative, str(path.parent / ".." / path.parent.name / path.name), str(link / path.name)]


def test_a_run_is_identical_through_every_door_however_the_path_is_spelled(
    bt: dict[str, Any], tmp_path: Path
) -> None:
    path = bt["path"]
    uid = bt["uids"][1]
    ref = open_run_dataset(path, uid)
    source = str(path.resolve())
    assert ref.encoding["source"] == source and "beamtime" not in ref.attrs
    for spelled in _spellings(path, tmp_path):
        got = {
            "open_run_dataset": open_run_dataset(spelled, uid),
            "v1": BeamtimeCatalog(spelled)[uid].to_dask(),
            "v2": RunCatalog.from_beamtime(spelled)[uid].read(),
            "engine": xr.open_dataset(spelled, engine="resonance", group=uid, chunks={}),
            "datatree": xr.open_datatree(spelled, engine="resonance", chunks={})[f"{uid}/primary"].to_dataset(),
            "run_tree": open_run_tree(spelled, uid)["primary"].to_dataset(),
            "many": RunSet(spelled).datasets([uid])[0],
        }
        for door, ds in got.items():
            xr.testing.assert_identical(ds, ref)
            if door not in ("datatree", "run_tree"):  # a tree node keeps no encoding of its own
                assert ds.encoding["source"] == source, (door, spelled)
            np.testing.assert_array_equal(ds.detector_image.values, bt["frames"])
        # dask names follow what was read, not the spelling
        assert got["v1"].detector_image.data.name == ref.detector_image.data.name == got["many"].detector_image.data.name


def test_tiled_reads_the_same_values_and_attrs(bt: dict[str, Any]) -> None:
    pytest.importorskip("tiled")
    from tiled.client import Context, from_context
    from tiled.server.app import build_app

    from intake_resonance.faces.tiled import beamtime_tree

    path, uids = bt["path"], bt["uids"]
    with Context.from_app(build_app(beamtime_tree(path))) as ctx:
        client = from_context(ctx, structure_clients="numpy")
        assert list(client) == uids
        for uid in uids[:3]:
            local = open_run_dataset(path, uid).load()
            remote = client[uid[:7]]["primary"].read()
            assert dict(remote.attrs) == dict(local.attrs)
            for name in ("i0", "energy_position", "detector_image"):
                if name in local:
                    np.testing.assert_array_equal(remote[name].values, local[name].values)
        from tiled.queries import Eq

        assert list(client.search(Eq("sample_name", "PS"))) == [uids[0], uids[2]]
        assert list(client.search(Eq("sample", "PS"))) == [uids[0], uids[2]]
        assert list(client.search(Eq("flag", True))) == [uids[3]]
        assert list(client.search(Eq("plan", "rsoxs"))) == list(client.search(Eq("start.plan_name", "rsoxs"))) == [uids[1]]
        assert list(client.search(Eq("status", "success"))) == uids[:3]
        with pytest.raises(Exception, match="sample_name"):
            list(client.search(Eq("sampel", "PS")))


def test_chunks_through_every_face(bt: dict[str, Any]) -> None:
    path, uid = bt["path"], bt["uids"][1]
    want = open_run_dataset(path, uid, chunks=2).detector_image.chunks
    assert want[0] == (2, 2, 1)
    assert BeamtimeCatalog(str(path))[uid].to_dask(chunks=2).detector_image.chunks == want
    assert BeamtimeCatalog(str(path), chunks=2)[uid].to_dask().detector_image.chunks == want
    assert RunCatalog.from_beamtime(path, chunks=2)[uid].read().detector_image.chunks == want
    assert RunCatalog.from_beamtime(path)[uid].read(chunks=2).detector_image.chunks == want
    assert xr.open_dataset(path, engine="resonance", group=uid, chunks={}, frame_chunks=2).detector_image.chunks == want
    assert RunSet(path, chunks=2).stack([uid]).detector_image.chunks[1:] == want


def test_one_view_of_a_live_beamtime(bt: dict[str, Any]) -> None:
    path, uids = bt["path"], list(bt["uids"])
    faces = _faces(path)
    narrowed = {k: cat.search(plan_name="nexafs") for k, cat in faces.items()}
    nexafs = [uids[0], uids[2]]
    for step in range(3):
        with BeamtimeWriter(path, seed=step) as w:
            uid, _ = write_nexafs(w, T0 + 1000 + 100 * step)
        uids.append(uid)
        nexafs.append(uid)
        for name, cat in faces.items():
            assert len(cat) == len(uids), (name, step)
            assert list(cat) == uids, (name, step)
            assert list(cat.to_dataframe().uid) == uids, (name, step)
            newest = cat[-1]
            assert getattr(newest, "uid", None) or newest.kwargs["uid"] == uid
            assert uid in cat
            assert set(cat.events().uid) <= set(uids) and uid in set(cat.events().uid)
            found = narrowed[name]
            assert list(found) == nexafs == list(found.to_dataframe().uid), (name, step)
            assert list(found.stack().run.values) == nexafs, (name, step)
            assert list(cat.search(plan_name="nexafs")) == nexafs
        assert RunSet(path).uids() == uids


def test_saved_catalogs_travel(bt: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import intake
    import yaml

    path, uid = bt["path"], bt["uids"][1]
    monkeypatch.chdir(path.parent.parent)
    relative = os.path.join(path.parent.name, path.name)
    runs = RunCatalog.from_beamtime(relative)
    mine = intake.entry.Catalog()
    mine.add_entry(runs[uid], name="reference")
    mine.to_yaml_file(str(tmp_path / "mine.yaml"))
    runs.search(plan_name="rsoxs").to_yaml_file(str(tmp_path / "found.yaml"))
    v1 = BeamtimeCatalog(relative)[uid]
    (tmp_path / "v1.yaml").write_text(v1.yaml())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    ref = open_run_dataset(path, uid)
    xr.testing.assert_identical(intake.from_yaml_file(str(tmp_path / "mine.yaml")).reference.read(), ref)
    xr.testing.assert_identical(intake.from_yaml_file(str(tmp_path / "found.yaml"))[uid].read(), ref)
    args = yaml.safe_load((tmp_path / "v1.yaml").read_text())["sources"][uid]["args"]
    assert Path(args["path"]).is_absolute()
    xr.testing.assert_identical(intake.open_catalog(str(tmp_path / "v1.yaml"))[uid].to_dask(), ref)
