"""check(): every problem of a beamtime reported as a Finding, without raising."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import T0, Written, write_nexafs, write_rsoxs

from intake_resonance.tools.check import Finding, check
from intake_resonance.tools.writer import BeamtimeWriter


def _sql(path: Path, sql: str, params: tuple = ()) -> None:
    conn = sqlite3.connect(path)
    conn.execute(sql, params)
    conn.commit()
    conn.close()


def _levels(findings: list[Finding]) -> list[str]:
    return [f.level for f in findings]


def test_sound_beamtime_has_no_findings(beamtime: Written) -> None:
    assert check(beamtime.path) == []
    assert check(str(beamtime.path), frames=False) == []


def test_finding_str_is_one_line_naming_every_place() -> None:
    f = Finding("error", "event data is not\nvalid JSON", "/d/bt.db", run="abc", stream="primary", seq_num=3, field="i0")
    assert str(f) == "error: /d/bt.db, run abc, stream primary, seq_num 3, field i0: event data is not valid JSON"
    assert str(Finding("warning", "odd", "/d/bt.db")) == "warning: /d/bt.db: odd"
    with pytest.raises(AttributeError):
        f.level = "warning"  # frozen


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: None, ["does not exist"]),
        (lambda p: p.write_bytes(b"not a database"), ["not a SQLite database"]),
        (lambda p: _sql(p, "CREATE TABLE t (x)"), ["table 'samples' is missing"]),
    ],
    ids=["missing", "not-sqlite", "no-tables"],
)
def test_not_a_beamtime_is_one_error(tmp_path: Path, make, words: list[str]) -> None:
    path = tmp_path / "bt.db"
    make(path)
    before = sorted(os.listdir(tmp_path))
    findings = check(path)
    assert len(findings) == 1 and findings[0].level == "error"
    assert findings[0].path == str(path) and all(w in findings[0].message for w in words)
    assert sorted(os.listdir(tmp_path)) == before  # nothing created


def test_schema_too_new_is_one_error(beamtime: Written) -> None:
    _sql(beamtime.path, "PRAGMA user_version = 5")
    (f,) = check(beamtime.path)
    assert f.level == "error" and "5" in f.message and "(2)" in f.message


def test_every_broken_row_is_reported(beamtime: Written) -> None:
    # several problems at once: check() goes on after each one
    nexafs, rsoxs = beamtime.uids["nexafs"], beamtime.uids["rsoxs"]
    _sql(beamtime.path, "UPDATE events SET data = '{bad' WHERE seq_num IN (3, 5)")
    _sql(beamtime.path, "UPDATE events SET data = '[1]' WHERE seq_num = 2")
    _sql(beamtime.path, "UPDATE streams SET data_keys = '{' WHERE name = 'baseline'")
    _sql(beamtime.path, "UPDATE runs SET metadata = '{x' WHERE uid = ?", (nexafs,))
    findings = check(beamtime.path, frames=False)
    assert all(f.level == "error" and f.path == str(beamtime.path) for f in findings)
    events = [(f.run, f.stream, f.seq_num) for f in findings if "event data" in f.message]
    # seq_num 3 and 5 of the rsoxs run are bad too (its events are 1..5)
    assert (nexafs, "primary", 2) in events and (nexafs, "primary", 3) in events and (nexafs, "primary", 5) in events
    assert (rsoxs, "primary", 3) in events and (rsoxs, "primary", 5) in events
    assert any("data_keys" in f.message and f.stream == "baseline" and f.run == nexafs for f in findings)
    assert any("run metadata" in f.message and f.run == nexafs for f in findings)
    assert any("must be a JSON object, found list" in f.message and f.seq_num == 2 for f in findings)


def test_run_level_warnings(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        closed, _ = write_nexafs(w, T0, n=3)
        open_uid = w.open_run("scan", sample="gone", time=T0 + 50)
        w.open_stream("primary", {}, time=T0 + 50)
        w.write_event({"a": 1}, time=T0 + 51)
        w.close()  # never closed
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys = OFF")  # leave the dangling sample_id, as old files have
    conn.execute("DELETE FROM samples WHERE name = 'gone'")
    conn.execute("UPDATE runs SET num_events = 99 WHERE uid = ?", (closed,))
    conn.commit()
    conn.close()
    findings = check(path)
    assert _levels(findings) == ["warning"] * 3, [str(f) for f in findings]
    by_run = {(f.run, f.message.split()[0]) for f in findings}
    assert (closed, "num_events") in by_run
    assert any(f.run == closed and "99" in f.message and "4 event(s)" in f.message for f in findings)
    assert any(f.run == open_uid and "never closed" in f.message for f in findings)
    assert any(f.run == open_uid and "no longer exists" in f.message for f in findings)


@pytest.fixture
def rsoxs(tmp_path: Path) -> tuple[Path, str, np.ndarray]:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path, seed=3) as w:
        uid, _, frames = write_rsoxs(w, T0, n=4)
    return path, uid, frames


def test_index_beyond_array_one_error_per_frame(rsoxs) -> None:
    path, uid, _ = rsoxs
    zarr.open_array(str(path.with_suffix(".zarr")), path=f"runs/{uid}/detector_image", mode="r+").resize((2, 6, 5))
    findings = check(path)
    assert _levels(findings) == ["error", "error"]
    assert [f.seq_num for f in findings] == [3, 4]
    for f in findings:
        assert f.path == str(path.with_suffix(".zarr")) and f.run == uid and f.field == "detector_image"
        assert "of 2 frames" in f.message and f.stream == "primary"
    assert check(path, frames=False) == []


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("UPDATE image_refs SET shape_x = 7", ["(4, 6, 5)", "(7, 5)"]),
        ("UPDATE image_refs SET dtype = 'uint16'", ["int32", "uint16"]),
        ("UPDATE image_refs SET dtype = 'nonsense'", ["'nonsense' is not a NumPy dtype"]),
    ],
)
def test_shape_and_dtype_against_array(rsoxs, sql: str, words: list[str]) -> None:
    path, uid, _ = rsoxs
    _sql(path, sql)
    (f,) = check(path)
    assert f.level == "error" and f.run == uid and f.field == "detector_image" and f.seq_num == 1
    assert all(w in f.message for w in words), f.message


def test_refs_disagreeing_and_duplicated(rsoxs) -> None:
    path, uid, _ = rsoxs
    _sql(
        path,
        "INSERT INTO image_refs (event_uid, field_name, zarr_group, index_in_stack, shape_x, shape_y, dtype) "
        "SELECT event_uid, field_name, zarr_group, 0, shape_x, shape_y, 'uint8' FROM image_refs WHERE index_in_stack = 1",
    )
    messages = [f.message for f in check(path) if f.level == "error"]
    assert any("more than one frame" in m for m in messages)
    assert any("disagree" in m for m in messages)


def test_escaping_group_is_refused_without_touching_it(rsoxs, tmp_path: Path, monkeypatch) -> None:
    path, uid, _ = rsoxs
    outside = zarr.open_array(str(tmp_path / "outside"), mode="w", shape=(4, 6, 5), chunks=(1, 6, 5), dtype="int32")
    outside[:] = 1
    _sql(path, "UPDATE image_refs SET zarr_group = '../outside'")
    opened: list[str] = []
    real = zarr.open_array
    monkeypatch.setattr(zarr, "open_array", lambda *a, **k: opened.append(str(k.get("path"))) or real(*a, **k))
    findings = check(path)
    errors = [f for f in findings if f.level == "error"]
    assert len(errors) == 1 and "'../outside'" in errors[0].message and "outside the Zarr store" in errors[0].message
    assert "outside" not in "".join(opened)
    # the run's real array is now referenced by nobody
    (warn,) = [f for f in findings if f.level == "warning"]
    assert "4 of 4 frame(s)" in warn.message and "not part of any run" in warn.message and warn.run == uid


def test_missing_array_and_missing_store(rsoxs) -> None:
    path, uid, _ = rsoxs
    store = path.with_suffix(".zarr")
    shutil.rmtree(store / "runs" / uid)
    (f,) = check(path)
    assert f.level == "error" and str(store) == f.path and f"runs/{uid}/detector_image" in f.message
    shutil.rmtree(store)
    (f,) = check(path)
    assert f.level == "error" and str(store) in f.message and "does not exist" in f.message
    assert "4 image_refs row(s) in 1 run(s)" in f.message and "scalar data is still readable" in f.message
    assert check(path, frames=False) == []
    assert not store.exists()


def test_store_missing_without_frames_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        write_nexafs(w, T0)
    shutil.rmtree(path.with_suffix(".zarr"))
    assert check(path) == []


def test_frames_no_row_references(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        uid, _, _ = write_rsoxs(w, T0, n=3)
        # a crash: frames stored, rows never committed
        live = w.open_run("rsoxs", time=T0 + 10)
        w.open_stream("primary", {}, time=T0 + 10)
        for i in range(12):
            w.write_image(w.write_event({}, time=T0 + 11 + i), "detector_image", np.zeros((6, 5), np.int32))
        w.connection.rollback()
        w.close()
    findings = check(path)
    (orphan,) = [f for f in findings if "not part of any run" in f.message]
    assert orphan.level == "warning" and orphan.run == live and orphan.field == "detector_image"
    assert "12 of 12 frame(s)" in orphan.message and "index 0, 1, 2" in orphan.message and ", ..." in orphan.message
    assert "still open" in orphan.message
    assert all(f.run == live for f in findings)  # the finished run is sound
    assert not [f for f in check(path, frames=False) if "frame" in f.message]


def test_zarr_format_2_store(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path, zarr_format=2) as w:
        uid, _, _ = write_rsoxs(w, T0, n=3)
    assert check(path) == []
    zarr.open_array(str(path.with_suffix(".zarr")), path=f"runs/{uid}/detector_image", mode="r+").resize((5, 6, 5))
    (f,) = check(path)
    assert f.level == "warning" and "2 of 5 frame(s)" in f.message and "index 3, 4" in f.message


def test_reads_only_metadata_and_is_fast(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        write_rsoxs(w, T0, n=50)
    reads: list[object] = []
    monkeypatch.setattr(zarr.Array, "__getitem__", lambda self, key: reads.append(key))
    monkeypatch.setattr(zarr.Array, "get_orthogonal_selection", lambda self, *a, **k: reads.append(a))
    assert check(path) == []
    assert reads == []
