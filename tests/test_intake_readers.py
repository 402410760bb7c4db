"""intake 2 readers: datatype recognition, run readers, SQL search, v2 YAML, pipelines, import hygiene."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import intake
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from conftest import T0, write_nexafs, write_rsoxs
from intake.readers.datatypes import SQLite, recommend
from intake.readers.entry import Catalog
from intake.readers.search import Text

import intake_resonance
from intake_resonance.beamtime import records
from intake_resonance.beamtime.errors import BeamtimeError, BeamtimeFormatError, BeamtimeNotFoundError, RunNotFoundError
from intake_resonance.beamtime.format import Database
from intake_resonance.datasets import open as dataset
from intake_resonance.faces.intake_drivers import RunSource
from intake_resonance.faces.intake_readers import (
    Beamtime,
    BeamtimeFolder,
    BeamtimeFolderReader,
    BeamtimeReader,
    RunCatalog,
    RunReader,
    RunTreeReader,
    folder_catalog,
)
from intake_resonance.tools.cli import cli
from intake_resonance.tools.demo import write_demo
from intake_resonance.tools.writer import BeamtimeWriter

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def bt(tmp_path):
    """Four runs: nexafs (PS), rsoxs with frames (P3HT), nexafs (PMMA), an open scan."""
    path = tmp_path / "data" / "bt.db"
    with BeamtimeWriter(path, seed=5) as w:
        uids = [write_nexafs(w, T0, sample="PS")[0]]
        uid, _, frames = write_rsoxs(w, T0 + 3600, sample="P3HT")
        uids.append(uid)
        uids.append(write_nexafs(w, T0 + 86400, sample="PMMA")[0])
        uids.append(w.open_run("scan", sample=None, time=T0 + 90000, metadata={"edge": "N"}))
        w.close()
    return path, uids, frames


def _plain_sqlite(path: Path, sql: str = "CREATE TABLE runs (uid TEXT)") -> Path:
    conn = sqlite3.connect(path)
    try:
        conn.execute(sql)
        conn.commit()
    finally:
        conn.close()
    return path


# ----------------------------------------------------------------- datatype
def test_recommend_offers_beamtime_by_content(bt, tmp_path):
    path, _, _ = bt
    found = recommend(str(path))
    assert Beamtime in found and SQLite in found
    assert Beamtime in recommend(path.as_uri())
    # same name pattern, other content: never a beamtime
    plain = _plain_sqlite(tmp_path / "plain.db")
    assert SQLite in recommend(str(plain)) and Beamtime not in recommend(str(plain))
    # the content decides, not the name
    renamed = tmp_path / "beamtime_copy.sqlite"
    shutil.copy(path, renamed)
    assert Beamtime in recommend(str(renamed))
    # reading only the name (no head) is not enough
    assert Beamtime not in recommend(str(path), head=False)


def test_recommend_reads_schema_as_sqlite_stores_it(tmp_path):
    """Lower-case keywords and quoted names are how other writers may spell the schema."""
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    try:
        for name in ("samples", "runs", "streams", "events"):
            conn.execute(f'create table if not exists "{name}" (x)')
        assert Beamtime not in recommend(str(path))  # not yet: image_refs is missing
        conn.execute("create table [image_refs] (x)")
        conn.commit()
    finally:
        conn.close()
    assert Beamtime in recommend(str(path))


def test_datatype_to_reader(bt):
    path, uids, frames = bt
    data = Beamtime(str(path))
    assert isinstance(data.to_reader(), BeamtimeReader)  # a beamtime's default: its runs
    run = data.to_reader("xarray:Dataset", uid=uids[1])
    assert isinstance(run, RunReader)
    ds = run.read()
    np.testing.assert_array_equal(ds.detector_image.values, frames)
    assert isinstance(data.to_reader("xarray:DataTree", uid=uids[0]), RunTreeReader)
    assert isinstance(data.to_reader("Catalog"), BeamtimeReader)
    assert {RunReader, RunTreeReader, BeamtimeReader} <= set(data.possible_readers["importable"])


# ------------------------------------------------------------------ readers
def test_run_reader_equals_engine_and_v1(bt):
    path, uids, frames = bt
    uid = uids[1]
    ds = RunReader(str(path), uid=uid).read()
    engine = xr.open_dataset(path, engine="resonance", group=uid, chunks={})
    xr.testing.assert_identical(ds, engine)
    assert ds.detector_image.chunks == engine.detector_image.chunks
    assert dict(ds.attrs) == dict(engine.attrs) and ds.attrs["uid"] == uid
    xr.testing.assert_identical(ds, RunSource(str(path), uid).to_dask())
    np.testing.assert_array_equal(ds.detector_image.values, frames)
    # keywords reach the one builder
    small = RunReader(str(path), uid=uid[:8], chunks=2).read()
    assert small.detector_image.chunks == dataset.open_run_dataset(path, uid, chunks=2).detector_image.chunks
    assert small.detector_image.chunks[0] == (2, 2, 1)
    base = RunReader(Beamtime(path.as_uri()), uid=uids[0], stream="baseline").read()
    xr.testing.assert_identical(base, dataset.open_run_dataset(path, uids[0], "baseline"))
    dropped = RunReader(str(path), uid=uid, drop_variables=["detector_image"]).read()
    assert "detector_image" not in dropped and "energy_position" in dropped


def test_tree_reader(bt):
    path, uids, _ = bt
    tree = RunTreeReader(str(path), uid=uids[0]).read()
    assert set(tree.children) == {"baseline", "primary"}
    xr.testing.assert_identical(tree["primary"].to_dataset(), dataset.open_run_dataset(path, uids[0]))
    assert tree.attrs["uid"] == uids[0]


def test_reader_from_call(bt):
    path, uids, _ = bt
    for func in (intake_resonance.open_run_dataset, dataset.open_run_dataset):
        reader = intake.reader_from_call(func, str(path), uid=uids[1][:8], chunks=3)
        assert isinstance(reader, RunReader) and isinstance(reader.data, Beamtime)
        xr.testing.assert_identical(reader.read(), dataset.open_run_dataset(path, uids[1], chunks=3))
    open_run_dataset = intake_resonance.open_run_dataset  # noqa: F841 - read by the string form below
    text = intake.reader_from_call(f"open_run_dataset({str(path)!r}, uid={uids[0]!r}, stream='baseline')")
    assert text.read().attrs["stream"] == "baseline"
    tree = intake.reader_from_call(intake_resonance.open_run_tree, beamtime=str(path), uid=uids[0])
    assert isinstance(tree, RunTreeReader) and set(tree.read().children) == {"baseline", "primary"}


def test_reader_errors(bt, tmp_path):
    path, uids, _ = bt
    with pytest.raises(BeamtimeError, match="local files only"):
        RunReader(Beamtime("s3://bucket/bt.db"), uid=uids[0]).read()
    with pytest.raises(BeamtimeError, match="storage_options"):
        RunReader(Beamtime(str(path), storage_options={"anon": True}), uid=uids[0]).read()
    with pytest.raises(RunNotFoundError, match="no run"):
        RunReader(str(path), uid="ffffffffffff").read()
    with pytest.raises(BeamtimeNotFoundError):
        BeamtimeReader(str(tmp_path / "missing.db")).read()
    with pytest.raises(BeamtimeFormatError, match="not a beamtime"):
        BeamtimeReader(str(_plain_sqlite(tmp_path / "plain.db"))).read()
    with pytest.raises(TypeError, match="sream"):
        RunReader(str(path), uid=uids[0], sream="baseline").read()


# ------------------------------------------------------------------ catalog
@pytest.fixture
def calls(monkeypatch):
    """Counts of the record lookups and run opens the readers make."""
    counts = {"get_run": 0, "list_uids": 0, "open_run_dataset": 0}

    def spy(module, name):
        original = getattr(module, name)

        def counted(*args, **kwargs):
            counts[name] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)

    spy(records, "get_run")
    spy(records, "list_uids")
    spy(dataset, "open_run_dataset")
    return counts


def test_catalog_lists_lazily_and_finds_runs(bt, calls):
    path, uids, _ = bt
    runs = BeamtimeReader(str(path)).read()
    assert isinstance(runs, RunCatalog) and isinstance(runs, Catalog)
    assert list(runs) == uids and len(runs) == 4
    assert calls == {"get_run": 0, "list_uids": 1, "open_run_dataset": 0}  # no entry built yet
    assert isinstance(runs[-1], RunReader) and runs[-1].kwargs["uid"] == uids[-1]
    assert runs[np.int64(1)].kwargs["uid"] == uids[1]
    assert runs[uids[2][:6]].kwargs["uid"] == uids[2]
    assert runs[uids[0]].metadata["plan_name"] == "nexafs" and runs[uids[0]].metadata["sample_name"] == "PS"
    assert calls["open_run_dataset"] == 0  # entries are readers; nothing read yet
    ds = runs[1].read()
    assert calls["open_run_dataset"] == 1
    xr.testing.assert_identical(ds, dataset.open_run_dataset(path, uids[1]))
    with pytest.raises(IndexError, match="out of range"):
        runs[4]
    with pytest.raises(TypeError):
        runs[True]
    with pytest.raises(KeyError, match="no run"):
        runs["ffffffffffff"]
    with pytest.raises(AttributeError):
        runs.no_such_thing
    assert "4 runs" in repr(runs)


def test_search_runs_in_sql(bt, calls, monkeypatch):
    path, uids, _ = bt
    runs = RunCatalog.from_beamtime(path)
    seen: list[tuple[str, tuple]] = []
    query = Database.query

    def spy(self, sql, params=()):
        seen.append((sql, tuple(params)))
        return query(self, sql, params)

    monkeypatch.setattr(Database, "query", spy)
    found = runs.search(plan_name="nexafs", sample="PS")
    assert isinstance(found, RunCatalog) and list(found) == [uids[0]]
    # one listing query, the values as parameters, no run looked at one by one
    assert calls == {"get_run": 0, "list_uids": 2, "open_run_dataset": 0}
    listing = [(sql, params) for sql, params in seen if "FROM runs" in sql]
    assert len(listing) == 1 and listing[0][1] == ("nexafs", "PS")
    assert not any("nexafs" in sql for sql, _ in seen)
    # chained and text searches narrow further, still in SQL
    assert list(runs.search(plan_name="nexafs").search(since=T0 + 1)) == [uids[2]]
    assert list(runs.search("P3HT")) == [uids[1]]
    assert list(runs.search(exit_status=None)) == [uids[3]] and list(runs.search(edge="N")) == [uids[3]]
    assert list(runs.search(plan_name="x' OR '1'='1")) == []
    assert calls["get_run"] == 0
    # intake's own search expressions still work: in Python, building every entry
    python = runs.search(Text(uids[1][:12]))  # Text looks in the entry's repr: reader and kwargs
    assert [e.kwargs["uid"] for e in python.entries.values()] == [uids[1]]
    assert calls["get_run"] == len(uids)
    assert list(python) == [uids[1]] and python[uids[1]].read().attrs["uid"] == uids[1]


def test_catalog_criteria_from_reader_live(bt):
    path, uids, _ = bt
    narrowed = BeamtimeReader(str(path), criteria={"plan_name": "nexafs"}, stream="baseline").read()
    assert list(narrowed) == [uids[0], uids[2]]
    assert narrowed[0].read().attrs["stream"] == "baseline"
    with BeamtimeWriter(path) as w:
        new = write_nexafs(w, T0 + 100_000, sample="PS")[0]
    assert new in narrowed and list(narrowed) == [uids[0], uids[2], new]  # every call sees the newest commit
    assert narrowed[new[:10]].kwargs["uid"] == new == narrowed[-1].kwargs["uid"]
    assert list(narrowed.to_dataframe().uid) == list(narrowed)
    assert list(narrowed.reload()) == [uids[0], uids[2], new]
    with pytest.raises(KeyError):
        narrowed[uids[1]]  # in the beamtime, not in this catalog


def test_folder_reader(tmp_path, bt):
    path, uids, _ = bt
    shutil.copy(path, path.with_name("another.db"))  # a .db without its .zarr is still listed
    cat = BeamtimeFolderReader(str(path.parent)).read()
    assert list(cat) == ["another", "bt"]
    runs = cat["bt"].read()
    assert isinstance(runs, RunCatalog) and list(runs) == uids
    assert list(cat.bt.read()) == uids
    with pytest.raises(BeamtimeNotFoundError, match="does not exist"):
        BeamtimeFolderReader(BeamtimeFolder(str(tmp_path / "nowhere"))).read()


# --------------------------------------------------------------------- YAML
def test_add_entry_round_trip(bt, tmp_path):
    path, uids, _ = bt
    runs = BeamtimeReader(str(path)).read()
    cat = Catalog()
    cat.add_entry(RunReader(data=Beamtime(str(path)), uid=uids[0], stream="baseline"), name="reference")
    cat.add_entry(runs[uids[1]], name="frames")
    cat.add_entry(BeamtimeReader(data=Beamtime(str(path)), criteria=[{"sample": "PS"}]), name="ps_runs")
    cat.to_yaml_file(str(tmp_path / "cat.yaml"))
    back = intake.from_yaml_file(str(tmp_path / "cat.yaml"))
    xr.testing.assert_identical(back["reference"].read(), dataset.open_run_dataset(path, uids[0], "baseline"))
    xr.testing.assert_identical(back["frames"].read(), dataset.open_run_dataset(path, uids[1]))
    assert list(back["ps_runs"].read()) == [uids[0]]
    # a whole RunCatalog persists too, and reads back as a plain Catalog of the same readers
    runs.search(plan_name="nexafs").to_yaml_file(str(tmp_path / "nexafs.yaml"))
    plain = intake.from_yaml_file(str(tmp_path / "nexafs.yaml"))
    assert list(plain) == [uids[0], uids[2]]
    xr.testing.assert_identical(plain[uids[2]].read(), dataset.open_run_dataset(path, uids[2]))


def test_shipped_v2_yaml(tmp_path):
    shutil.copytree(REPO / "catalogs", tmp_path / "catalogs")
    db = write_demo(tmp_path / "demo-data", frame_shape=(16, 16))
    cat = intake.from_yaml_file(str(tmp_path / "catalogs" / "demo.v2.yaml"))
    assert list(cat) == ["demo_beamtime", "demo_nexafs", "demo_folder"]
    runs = cat.demo_beamtime.read()
    with Database(db) as handle:
        all_uids = records.list_uids(handle)
        nexafs = records.list_uids(handle, records.RunQuery().narrow(plan_name="nexafs", exit_status="success"))
    assert list(runs) == all_uids and list(cat.demo_nexafs.read()) == nexafs
    rsoxs = runs.search(plan_name="rsoxs")[-1]
    xr.testing.assert_identical(rsoxs.read(), dataset.open_run_dataset(db, rsoxs.kwargs["uid"]))
    baseline = cat(stream_name="baseline").demo_beamtime.read()[0].read()
    assert baseline.attrs["stream"] == "baseline"
    assert list(cat.demo_folder.read()) == ["demo_beamtime"]


def test_cli_writes_v2_catalog(bt, tmp_path):
    path, uids, _ = bt
    result = CliRunner().invoke(cli, ["catalog", str(path.parent), "--v2"])
    assert result.exit_code == 0, result.output
    yaml_file = tmp_path / "elsewhere" / "cat.yaml"  # paths are absolute: the file works anywhere
    yaml_file.parent.mkdir()
    yaml_file.write_text(result.output)
    cat = intake.from_yaml_file(str(yaml_file))
    assert list(cat) == ["bt", "beamtimes"]
    assert list(cat.bt.read()) == uids
    assert list(cat.beamtimes.read().bt.read().search(plan_name="rsoxs")) == [uids[1]]
    assert folder_catalog(path.parent).to_dict() == cat.to_dict() | {"user_parameters": {}}


# ---------------------------------------------------------------- pipelines
@pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")
def test_pipeline_to_zarr_and_back(bt, tmp_path):
    path, uids, frames = bt
    run = BeamtimeReader(str(path)).read()[uids[1]]
    out = tmp_path / "run.zarr"
    pipe = run.transform.XarrayToZarr(url=str(out))
    written = pipe.read()
    assert isinstance(written, intake.readers.datatypes.Zarr) and out.is_dir()
    back = written.to_reader(reader="XArrayDatasetReader").read()  # not the pattern reader, also for Zarr
    xr.testing.assert_identical(back.load(), run.read().load())
    np.testing.assert_array_equal(back.detector_image.values, frames)


# ------------------------------------------------------------ import hygiene
def _python(code: str, tmp_path: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )


def test_import_intake_stays_light(tmp_path):
    done = _python(
        """
        import sys, intake
        heavy = [m for m in ("xarray", "dask", "zarr", "numpy", "pandas") if m in sys.modules]
        print("loaded" if "intake_resonance.faces.intake_readers" in sys.modules else "missing", heavy)
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "loaded []" and done.stderr == ""


def test_broken_dependency_only_warns(bt, tmp_path):
    path, uids, _ = bt
    shim = tmp_path / "shim"
    (shim / "xarray").mkdir(parents=True)
    (shim / "xarray" / "__init__.py").write_text("raise ImportError('xarray is broken here')\n")
    done = _python(
        f"""
        import intake
        from intake_resonance.faces.intake_readers import Beamtime, RunReader
        assert Beamtime in intake.readers.datatypes.recommend({str(path)!r})
        try:
            RunReader({str(path)!r}, uid={uids[0]!r}).read()
        except ImportError as exc:
            print("read:", exc)
        """,
        tmp_path,
        shim,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and "read: xarray is broken here" in done.stdout
    # a package that cannot import at all: intake warns and goes on
    (shim / "intake_resonance").mkdir()
    (shim / "intake_resonance" / "__init__.py").write_text("raise ImportError('broken install')\n")
    done = _python("import intake; print(intake.readers.datatypes.SQLite.__name__)", tmp_path, shim)
    assert done.returncode == 0 and done.stdout.strip() == "SQLite"
    assert "intake_resonance.faces.intake_readers" in done.stderr and "broken install" in done.stderr
