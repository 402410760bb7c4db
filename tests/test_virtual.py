"""virtualize: a beamtime as an Icechunk repository any Zarr reader opens, frames referenced where they lie.

Every run is read back with plain ``xr.open_zarr`` on the Icechunk session
and compared with what our engine gives (``open_run_dataset``): variables,
values, dtypes, dims, coordinates and attributes.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import IMAGE_KEYS, T0, write_nexafs, write_rsoxs

pytest.importorskip("virtualizarr")
icechunk = pytest.importorskip("icechunk")

from intake_resonance import open_run_dataset, virtualize  # noqa: E402
from intake_resonance.beamtime import records  # noqa: E402
from intake_resonance.beamtime.errors import NotVirtualizableError, VirtualTargetError  # noqa: E402
from intake_resonance.beamtime.format import Database  # noqa: E402
from intake_resonance.tools.demo import write_demo  # noqa: E402
from intake_resonance.tools.writer import BeamtimeWriter  # noqa: E402
from intake_resonance.virtual import open_virtual_session  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore:Numcodecs codecs are not in the Zarr version 3 specification",
    "ignore:.*is currently not part in the Zarr format 3 specification",
)


# --------------------------------------------------------------------- helpers
def files_state(db: Path) -> dict[str, tuple[str, int]]:
    """Hash and mtime of the .db, its journals and every file of the .zarr."""
    paths = [db, db.with_name(db.name + "-journal"), db.with_name(db.name + "-wal")]
    store = db.with_suffix(".zarr")
    paths += sorted(p for p in store.rglob("*")) if store.exists() else []
    out = {}
    for p in paths:
        if p.is_file():
            out[str(p)] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        elif p.exists():
            out[str(p)] = ("<dir>", 0)
    return out


def streams_of(db_path: Path) -> list[tuple[str, str]]:
    with Database(db_path) as db:
        return [(uid, s.name) for uid in records.list_uids(db) for s in records.list_streams(db, uid)]


def assert_reads_back(db_path: Path, repo: Path, pairs: list[tuple[str, str]] | None = None) -> int:
    """Every (run, stream) opened from the repository equals our engine's Dataset; returns frames compared."""
    session = open_virtual_session(repo)
    frames = 0
    for uid, stream in pairs or streams_of(db_path):
        want = open_run_dataset(db_path, uid, stream)
        got = xr.open_zarr(session.store, group=f"{uid}/{stream}", consolidated=False, zarr_format=3)
        for name, var in want.data_vars.items():
            if var.ndim == 3:  # frames: lazy, one dask chunk per stored frame
                assert got[name].chunks[0] == (1,) * var.shape[0], name
                frames += var.shape[0]
        xr.testing.assert_identical(got.load(), want.load())
        assert {k: _kind(v) for k, v in got.variables.items()} == {k: _kind(v) for k, v in want.variables.items()}
    return frames


def _kind(var: xr.Variable) -> object:
    # Text is variable width both ways: object of str in our Datasets, NumPy's StringDType from Zarr.
    text = var.dtype == object and all(isinstance(v, str) for v in var.values.ravel())
    return "text" if text or var.dtype == np.dtypes.StringDType() else var.dtype


def gaps_beamtime(path: Path) -> dict[str, str]:
    """Runs that stress the mapping: gaps, float and uint16 frames, out-of-order frames, varied scalars."""
    uids = {}
    rng = np.random.default_rng(5)
    with BeamtimeWriter(path, seed=11) as w:
        # int32 frames with an event that has none: the engine promotes to float64 with NaN there
        uids["gap"] = w.open_run("rsoxs", sample="PS", time=T0)
        w.open_stream("primary", IMAGE_KEYS, time=T0)
        for i in range(4):
            ev = w.write_event({"energy_position": 280.0 + i, "exposure": 0.1}, time=T0 + 1 + i)
            if i != 2:
                w.write_image(ev, "detector_image", rng.integers(0, 100, (6, 5), dtype=np.int32))
        w.close_run(time=T0 + 10)
        # float32 frames with a gap, and uint16 frames stored out of event order
        uids["float"] = w.open_run("rsoxs", time=T0 + 20)
        w.open_stream("primary", {"img": {"external": True, "shape": [4, 3]}}, time=T0 + 20)
        for i in range(3):
            ev = w.write_event({"note": f"n{i}", "flag": bool(i), "vec": [i, i + 1]}, time=T0 + 21 + i)
            if i != 0:
                w.write_image(ev, "img", rng.random((4, 3), dtype=np.float32))
        w.close_run(time=T0 + 30)
        uids["order"] = w.open_run("rsoxs", time=T0 + 40)
        w.open_stream("primary", {"cam": {"external": True}, "n": {}}, time=T0 + 40)
        for i, pos in enumerate([2, 0, 1]):
            ev = w.write_event({"n": i, "label": f"e{i}"}, time=T0 + 41 + i)
            w.write_image(ev, "cam", rng.integers(0, 60000, (3, 7), dtype=np.uint16), index=pos)
        w.close_run(time=T0 + 50)
        # a declared image field with no frame at all: all NaN of its descriptor's shape
        uids["empty"] = w.open_run("rsoxs", time=T0 + 60)
        w.open_stream("primary", IMAGE_KEYS, time=T0 + 60)
        w.write_event({"energy_position": 1.0, "exposure": 0.1}, time=T0 + 61)
        w.close_run(time=T0 + 62)
    return uids


# ------------------------------------------------------------------ read back
@pytest.fixture(scope="module")
def demo_repo(tmp_path_factory):
    """The demo beamtime, its files' state before, its repository and the report of writing it."""
    folder = tmp_path_factory.mktemp("virtual-demo")
    db = write_demo(folder / "demo", frame_shape=(16, 16))
    before = files_state(db)
    return db, before, folder / "demo.icechunk", virtualize(db, folder / "demo.icechunk")


def test_every_demo_run_reads_back_as_our_engine_gives_it(demo_repo):
    db, before, repo, report = demo_repo
    assert report.created and report.snapshot_id
    with Database(db) as d:
        uids = records.list_uids(d)
        n_frames = sum(len(records.frame_refs(d, u, "detector_image", "primary")) for u in uids
                       if "detector_image" in records.image_fields(d, u, "primary"))
    assert report.written == uids and report.chunks == n_frames
    assert assert_reads_back(db, repo) == n_frames
    # the whole beamtime as a DataTree, /<uid>/<stream>, run attrs on /<uid>
    tree = xr.open_datatree(open_virtual_session(repo).store, engine="zarr", consolidated=False, zarr_format=3)
    assert sorted(tree.children) == sorted(uids)
    want = open_run_dataset(db, uids[-1])
    assert tree[uids[-1]].attrs == {k: v for k, v in want.attrs.items() if k != "stream"}
    assert files_state(db) == before


def test_test_beamtimes_read_back_gaps_dtypes_order_and_empty_fields(tmp_path, beamtime):
    virtualize(beamtime.path, tmp_path / "small.icechunk")
    assert assert_reads_back(beamtime.path, tmp_path / "small.icechunk") == 5
    got = xr.open_zarr(open_virtual_session(tmp_path / "small.icechunk").store, group=f"{beamtime.uids['rsoxs']}/primary",
                       consolidated=False, zarr_format=3)
    np.testing.assert_array_equal(got.detector_image.values, beamtime.frames["rsoxs"])  # the writer's own frames

    db = tmp_path / "gaps" / "bt.db"
    db.parent.mkdir()
    uids = gaps_beamtime(db)
    virtualize(db, tmp_path / "gaps.icechunk")
    assert_reads_back(db, tmp_path / "gaps.icechunk")
    session = open_virtual_session(tmp_path / "gaps.icechunk")
    gap = xr.open_zarr(session.store, group=f"{uids['gap']}/primary", consolidated=False, zarr_format=3)
    assert gap.detector_image.dtype == np.float64 and np.isnan(gap.detector_image[2]).all()
    assert not np.isnan(gap.detector_image[[0, 1, 3]]).any()
    empty = xr.open_zarr(session.store, group=f"{uids['empty']}/primary", consolidated=False, zarr_format=3)
    assert empty.detector_image.shape == (1, 6, 5) and np.isnan(empty.detector_image).all()


def test_a_moved_folder_reads_with_only_xarray_zarr_and_icechunk(tmp_path, demo_repo):
    """The beamtime and its repository, moved together, read in a process that cannot import us (the README's recipe)."""
    db, _, repo, _ = demo_repo
    pairs = streams_of(db)
    moved = tmp_path / "elsewhere" / "copied lab"
    shutil.copytree(db.parent.parent, moved, symlinks=True)  # the folder holding demo/ and demo.icechunk
    shutil.move(moved, tmp_path / "moved")  # and moved once more, so no path of the first place is left
    moved_repo = tmp_path / "moved" / repo.name
    out = tmp_path / "got.pickle"
    script = f"""
import sys
for name in ("intake_resonance", "virtualizarr", "intake"):
    sys.modules[name] = None  # importing any of them now fails
import pickle
from pathlib import Path
import icechunk, xarray as xr, zarr
folder = Path({str(moved_repo)!r}).resolve()
storage = icechunk.local_filesystem_storage(str(folder))
record = zarr.open_group(icechunk.Repository.open(storage).readonly_session("main").store, mode="r").attrs["intake_resonance"]
store = (folder / record["store"]).resolve()
prefix = store.as_uri() + "/"
config = icechunk.RepositoryConfig.default()
config.set_virtual_chunk_container(icechunk.VirtualChunkContainer(prefix, icechunk.local_filesystem_store(str(store)), name="beamtime"))
access = {{prefix: icechunk.credentials.LocalFileSystemAccess}}
repo = icechunk.Repository.open(storage, config=config, authorize_virtual_chunk_access=access)
session = repo.readonly_session("main")
got = {{(u, s): xr.open_zarr(session.store, group=f"{{u}}/{{s}}", consolidated=False, zarr_format=3).load() for u, s in {pairs!r}}}
assert not any(m.startswith("intake_resonance.") for m in sys.modules)
pickle.dump(got, open({str(out)!r}, "wb"))
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with open(out, "rb") as fh:
        got = pickle.load(fh)
    assert sorted(got) == sorted(pairs)
    moved_db = tmp_path / "moved" / db.parent.name / db.name
    n_frames = 0
    for (uid, stream), ds in got.items():  # every run kind of the demo: NEXAFS, RSoXS, en_scan, grid, aborted, open
        here = open_run_dataset(moved_db, uid, stream).load()
        xr.testing.assert_identical(ds, here)  # no attr names the old place
        n_frames += ds.sizes["time"] if "detector_image" in ds else 0
    assert n_frames > 0
    session = open_virtual_session(moved_repo)  # our reader finds the moved store the same way
    for (uid, stream), ds in got.items():
        ours = xr.open_zarr(session.store, group=f"{uid}/{stream}", consolidated=False, zarr_format=3).load()
        xr.testing.assert_identical(ours, ds)


def test_a_repository_of_the_earlier_layout_is_refused_with_the_way_out(tmp_path, beamtime):
    import zarr

    repo = tmp_path / "old.icechunk"
    virtualize(beamtime.path, repo)
    session = icechunk.Repository.open(icechunk.local_filesystem_storage(str(repo))).writable_session("main")
    root = zarr.open_group(session.store, mode="a", zarr_format=3)
    store_url = beamtime.path.with_suffix(".zarr").as_uri() + "/"
    root.attrs["intake_resonance"] = {"layout": 1, "beamtime": str(beamtime.path), "store": store_url}
    session.commit("as an earlier release wrote it")
    for call in (lambda: open_virtual_session(repo), lambda: virtualize(beamtime.path, repo)):
        with pytest.raises(VirtualTargetError, match=r"earlier intake-resonance \(layout 1.*run `intake-resonance virtualize"):
            call()


def test_a_repository_recording_a_store_that_is_no_beamtime_authorises_nothing(tmp_path, beamtime):
    import zarr

    repo = tmp_path / "r.icechunk"
    virtualize(beamtime.path, repo)
    secret = tmp_path / "secret.zarr"
    secret.mkdir()  # a .zarr folder, but no .db beside it: not a beamtime
    session = icechunk.Repository.open(icechunk.local_filesystem_storage(str(repo))).writable_session("main")
    root = zarr.open_group(session.store, mode="a", zarr_format=3)
    root.attrs["intake_resonance"] = {**root.attrs["intake_resonance"], "store": "../secret.zarr"}
    session.commit("handed over, pointing elsewhere")
    with pytest.raises(VirtualTargetError, match="not a beamtime's .zarr store"):
        open_virtual_session(repo)


# ----------------------------------------------------------------- live runs
def test_rerun_appends_new_runs_and_new_events_of_open_runs_as_new_commits(tmp_path):
    db = tmp_path / "live" / "bt.db"
    db.parent.mkdir()
    repo = tmp_path / "live.icechunk"
    w = BeamtimeWriter(db, seed=2).open()
    try:
        closed, _, _ = write_rsoxs(w, T0)
        live = w.open_run("rsoxs", time=T0 + 100)
        w.open_stream("primary", IMAGE_KEYS, time=T0 + 100)
        for i in range(2):
            ev = w.write_event({"energy_position": 285.0 + i, "exposure": 0.1}, time=T0 + 101 + i)
            w.write_image(ev, "detector_image", np.full((6, 5), i, np.int32))
        w.open_stream("baseline", {"beam_current": {}}, time=T0 + 103)  # commits the events so far
        first = virtualize(db, repo)
        assert first.written == [closed, live]
        assert assert_reads_back(db, repo) == 7

        again = virtualize(db, repo)  # nothing changed: no commit
        assert again.snapshot_id is None and again.unchanged == [closed, live]

        w.write_event({"beam_current": 500.0}, time=T0 + 104)
        w.close_run(time=T0 + 105)
        nexafs, _ = write_nexafs(w, T0 + 200)
    finally:
        w.close()
    second = virtualize(db, repo)
    assert second.written == [live, nexafs] and second.unchanged == [closed]
    assert assert_reads_back(db, repo) == 7
    # the first snapshot still reads as it was: the live run open, without its baseline event
    old = open_virtual_session(repo, snapshot_id=first.snapshot_id)
    tree = xr.open_datatree(old.store, engine="zarr", consolidated=False, zarr_format=3)
    assert sorted(tree.children) == sorted([closed, live])
    assert tree[live].attrs.get("time_stop") is None and tree[f"{live}/baseline"].sizes.get("time", 0) == 0
    frames = xr.open_zarr(old.store, group=f"{live}/primary", consolidated=False, zarr_format=3).detector_image.values
    np.testing.assert_array_equal(frames, [np.full((6, 5), i) for i in range(2)])
    ancestry = [s.id for s in icechunk.Repository.open(icechunk.local_filesystem_storage(str(repo))).ancestry(branch="main")]
    assert ancestry[:2] == [second.snapshot_id, first.snapshot_id]


def test_runs_selects_by_uid_prefix(tmp_path, beamtime):
    report = virtualize(beamtime.path, tmp_path / "one.icechunk", runs=[beamtime.uids["rsoxs"][:8]])
    assert report.written == [beamtime.uids["rsoxs"]]
    tree = xr.open_datatree(open_virtual_session(tmp_path / "one.icechunk").store, engine="zarr", consolidated=False, zarr_format=3)
    assert list(tree.children) == [beamtime.uids["rsoxs"]]


# ---------------------------------------------------------------- refusals
def _hand_array(db: Path, uid: str, group: str, frames: np.ndarray, **create) -> None:
    """Store frames in an array made by hand and point the run's events at it (as another writer might)."""
    import sqlite3

    import zarr

    arr = zarr.open_group(str(db.with_suffix(".zarr")), mode="a").create_array(group, shape=frames.shape, dtype=frames.dtype, **create)
    arr[:] = frames
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(
            "UPDATE image_refs SET zarr_group = ? WHERE event_uid IN "
            "(SELECT e.uid FROM events e JOIN streams s ON s.uid = e.stream_uid WHERE s.run_uid = ?)",
            (group, uid),
        )
    conn.close()


def test_chunks_of_two_frames_are_refused_or_skipped(tmp_path, beamtime):
    uid = beamtime.uids["rsoxs"]
    _hand_array(beamtime.path, uid, "other/two", beamtime.frames["rsoxs"], chunks=(2, 6, 5))
    before = files_state(beamtime.path)
    with pytest.raises(NotVirtualizableError, match=r"chunks of shape \(2, 6, 5\)") as info:
        virtualize(beamtime.path, tmp_path / "r.icechunk")
    assert info.value.run == uid and info.value.field == "detector_image" and info.value.stream == "primary"
    assert not (tmp_path / "r.icechunk" / "snapshots").exists() or len(list(icechunk.Repository.open(
        icechunk.local_filesystem_storage(str(tmp_path / "r.icechunk"))).ancestry(branch="main"))) == 1  # nothing committed
    report = virtualize(beamtime.path, tmp_path / "s.icechunk", skip_unmappable=True)
    assert report.written == [beamtime.uids["nexafs"]] and list(report.skipped) == [uid]
    assert files_state(beamtime.path) == before


def test_frames_split_over_arrays_with_different_codecs_are_refused(tmp_path, beamtime):
    import sqlite3

    import zarr

    uid = beamtime.uids["rsoxs"]
    arr = zarr.open_group(str(beamtime.path.with_suffix(".zarr")), mode="a").create_array(
        "other/raw", shape=(5, 6, 5), chunks=(1, 6, 5), dtype=np.int32, compressors=None)
    arr[:] = beamtime.frames["rsoxs"]
    with closing(sqlite3.connect(beamtime.path)) as conn, conn:  # the last two frames now live in another array
        conn.execute("UPDATE image_refs SET zarr_group = 'other/raw' WHERE index_in_stack >= 3")
    conn.close()
    with pytest.raises(NotVirtualizableError, match="different codecs"):
        virtualize(beamtime.path, tmp_path / "r.icechunk", runs=[uid])


def test_frames_split_over_arrays_alike_map_one_to_one(tmp_path, beamtime):
    import sqlite3

    import zarr

    uid = beamtime.uids["rsoxs"]
    src = zarr.open_array(str(beamtime.path.with_suffix(".zarr")), path=f"runs/{uid}/detector_image", mode="r")
    arr = zarr.open_group(str(beamtime.path.with_suffix(".zarr")), mode="a").create_array(
        "other/alike", shape=(5, 6, 5), chunks=(1, 6, 5), dtype=np.int32, compressors=src.compressors)
    arr[:] = beamtime.frames["rsoxs"][::-1]
    with closing(sqlite3.connect(beamtime.path)) as conn, conn:  # frames 3 and 4 from the reversed copy
        conn.execute("UPDATE image_refs SET zarr_group = 'other/alike', index_in_stack = 4 - index_in_stack WHERE index_in_stack >= 3")
    conn.close()
    virtualize(beamtime.path, tmp_path / "r.icechunk", runs=[uid])
    assert assert_reads_back(beamtime.path, tmp_path / "r.icechunk", [(uid, "primary")]) == 5


def test_chunk_link_leading_outside_the_store_is_refused(tmp_path, beamtime):
    from intake_resonance.beamtime.errors import StoreEscapeError

    uid = beamtime.uids["rsoxs"]
    chunk = beamtime.path.with_suffix(".zarr") / "runs" / uid / "detector_image" / "c" / "1" / "0" / "0"
    secret = tmp_path / "secret.bin"
    secret.write_bytes(chunk.read_bytes())  # decodes fine: only the boundary can refuse it
    chunk.unlink()
    chunk.symlink_to(secret)
    with pytest.raises(StoreEscapeError, match="outside the Zarr store"):
        virtualize(beamtime.path, tmp_path / "r.icechunk")


def test_zarr_group_escaping_the_store_is_refused(tmp_path, beamtime):
    import sqlite3

    from intake_resonance.beamtime.errors import StoreEscapeError

    with closing(sqlite3.connect(beamtime.path)) as conn, conn:
        conn.execute("UPDATE image_refs SET zarr_group = '../../elsewhere/detector_image'")
    conn.close()
    with pytest.raises(StoreEscapeError):
        virtualize(beamtime.path, tmp_path / "r.icechunk")


def test_targets_in_or_around_a_beamtime_are_refused(tmp_path, beamtime):
    before = files_state(beamtime.path)
    store = beamtime.path.with_suffix(".zarr")
    for target in (store / "repo", store, beamtime.path, tmp_path, beamtime.path.with_name("beamtime.db-journal")):
        with pytest.raises(VirtualTargetError):
            virtualize(beamtime.path, target)
    link = tmp_path / "elsewhere"
    link.symlink_to(store)
    with pytest.raises(VirtualTargetError, match="inside the Zarr store"):
        virtualize(beamtime.path, link / "repo")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(VirtualTargetError, match="not an Icechunk repository"):
        virtualize(beamtime.path, tmp_path / "full")
    # a repository of another beamtime, or one we did not write
    other = tmp_path / "other" / "bt.db"
    other.parent.mkdir()
    with BeamtimeWriter(other) as w:
        write_nexafs(w, T0)
    virtualize(other, tmp_path / "other.icechunk")
    with pytest.raises(VirtualTargetError, match="virtual repository of beamtime"):
        virtualize(beamtime.path, tmp_path / "other.icechunk")
    icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "foreign")))
    with pytest.raises(VirtualTargetError, match="did not write"):
        virtualize(beamtime.path, tmp_path / "foreign")
    assert files_state(beamtime.path) == before


def test_store_path_a_url_must_quote_is_refused_clearly(tmp_path):
    db = tmp_path / "a b#1" / "bt.db"
    db.parent.mkdir()
    with BeamtimeWriter(db) as w:
        write_rsoxs(w, T0)
    with pytest.raises(NotVirtualizableError, match="characters a URL must quote"):
        virtualize(db, tmp_path / "r.icechunk")


def test_text_with_missing_values_is_refused_not_read_back_as_empty_text(tmp_path):
    db = tmp_path / "t" / "bt.db"
    db.parent.mkdir()
    with BeamtimeWriter(db) as w:
        nexafs, _ = write_nexafs(w, T0)
        uid = w.open_run("scan", time=T0 + 100)
        w.open_stream("primary", {"note": {}}, time=T0 + 100)
        for i, note in enumerate(["a", None, "c"]):
            w.write_event({"note": note, "x": i}, time=T0 + 101 + i)
        w.close_run(time=T0 + 110)
    with pytest.raises(NotVirtualizableError, match="'note' holds Python objects") as info:
        virtualize(db, tmp_path / "r.icechunk")
    assert (info.value.run, info.value.stream, info.value.field) == (uid, "primary", "note")
    report = virtualize(db, tmp_path / "s.icechunk", skip_unmappable=True)
    assert report.written == [nexafs] and "note" in report.skipped[uid]


def test_absent_chunk_of_a_referenced_frame_is_an_error(tmp_path, beamtime):
    from intake_resonance.beamtime.errors import FramesMissingError

    uid = beamtime.uids["rsoxs"]
    (beamtime.path.with_suffix(".zarr") / "runs" / uid / "detector_image" / "c" / "3" / "0" / "0").unlink()
    with pytest.raises(FramesMissingError) as info:
        virtualize(beamtime.path, tmp_path / "r.icechunk")
    assert info.value.seq_num == 4 and info.value.run == uid


def test_a_chunk_file_changed_after_writing_is_refused_on_reading(tmp_path, beamtime):
    import time

    uid = beamtime.uids["rsoxs"]
    virtualize(beamtime.path, tmp_path / "r.icechunk", runs=[uid])
    chunk = beamtime.path.with_suffix(".zarr") / "runs" / uid / "detector_image" / "c" / "0" / "0" / "0"
    later = time.time() + 30
    os.utime(chunk, (later, later))  # as if the beamline had rewritten the frame
    ds = xr.open_zarr(open_virtual_session(tmp_path / "r.icechunk").store, group=f"{uid}/primary", consolidated=False, zarr_format=3)
    with pytest.raises(icechunk.IcechunkError, match="has changed"):
        ds.detector_image[0].values
    np.testing.assert_array_equal(ds.detector_image[1].values, beamtime.frames["rsoxs"][1])


@pytest.mark.parametrize("dtype, separator", [(">i4", "."), ("<i4", "/")])
def test_format_2_arrays_map_too(tmp_path, beamtime, dtype, separator):
    import sqlite3

    import zarr

    uid = beamtime.uids["rsoxs"]
    group = f"v2/{separator == '/'}{dtype[0]}"
    arr = zarr.create_array(str(beamtime.path.with_suffix(".zarr")), name=group, shape=(5, 6, 5), chunks=(1, 6, 5), dtype=dtype,
                            zarr_format=2, chunk_key_encoding={"name": "v2", "separator": separator})
    arr[:] = beamtime.frames["rsoxs"]
    with closing(sqlite3.connect(beamtime.path)) as conn, conn:
        conn.execute("UPDATE image_refs SET zarr_group = ?", (group,))
    conn.close()
    virtualize(beamtime.path, tmp_path / "r.icechunk", runs=[uid])
    assert assert_reads_back(beamtime.path, tmp_path / "r.icechunk", [(uid, "primary")]) == 5


def test_a_store_that_is_a_link_is_referenced_where_it_leads(tmp_path, beamtime):
    real = tmp_path / "volume" / "frames.zarr"
    real.parent.mkdir()
    store = beamtime.path.with_suffix(".zarr")
    store.rename(real)
    store.symlink_to(real)  # how facilities mount data volumes
    report = virtualize(beamtime.path, tmp_path / "r.icechunk")
    assert report.written == [beamtime.uids["nexafs"], beamtime.uids["rsoxs"]]
    storage = icechunk.local_filesystem_storage(str(tmp_path / "r.icechunk"))
    assert set(icechunk.Repository.fetch_config(storage).virtual_chunk_containers) == {real.resolve().as_uri() + "/"}
    assert assert_reads_back(beamtime.path, tmp_path / "r.icechunk") == 5


def test_another_writer_committing_meanwhile_is_a_clear_error(tmp_path, beamtime, monkeypatch):
    import zarr

    from intake_resonance.virtual import write

    repo = tmp_path / "r.icechunk"
    virtualize(beamtime.path, repo, runs=[beamtime.uids["nexafs"]])
    original = write._write_run

    def meanwhile(*args, **kwargs):
        other = open_virtual_session(repo)  # noqa: F841 - a reader does not conflict
        writer = icechunk.Repository.open(icechunk.local_filesystem_storage(str(repo))).writable_session("main")
        zarr.open_group(writer.store, mode="a").attrs["note"] = "someone else"
        writer.commit("another writer")
        return original(*args, **kwargs)

    monkeypatch.setattr(write, "_write_run", meanwhile)
    with pytest.raises(VirtualTargetError, match="Icechunk could not write the repository"):
        virtualize(beamtime.path, repo)
