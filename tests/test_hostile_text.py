"""Event data stored as bytes that are not UTF-8: a BadJSONError naming the run and seq_num, through every face,
the same from Arrow's fast path as from the plain one."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import intake
import pytest
import xarray as xr
from click.testing import CliRunner
from conftest import T0, write_nexafs

from intake_resonance import Catalog, check
from intake_resonance.beamtime import records
from intake_resonance.beamtime.errors import BadJSONError, BadTextError
from intake_resonance.beamtime.format import Database
from intake_resonance.datasets.open import open_run_dataset
from intake_resonance.tools.cli import cli
from intake_resonance.tools.writer import BeamtimeWriter

#: ``{"i0": 1.5, "note": "<0xff 0xfe>"}`` and ``{"i0": 2.5, "<0xff>": 1}``: not UTF-8 in a value, in a key.
BAD_VALUE = bytes.fromhex("7b226930223a312e352c226e6f7465223a22fffe227d")
BAD_KEY = bytes.fromhex("7b226930223a322e352c22ff223a317d")


def _spoil(path: Path, seq_num: int, data: bytes) -> None:
    conn = sqlite3.connect(path)
    conn.execute("UPDATE events SET data = CAST(? AS TEXT) WHERE seq_num = ?", (data, seq_num))
    assert conn.execute("SELECT typeof(data) FROM events WHERE seq_num = ?", (seq_num,)).fetchone() == ("text",)
    conn.commit()
    conn.close()


@pytest.fixture(params=["value", "key"])
def spoiled(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str, int]:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path, seed=4) as w:
        uid, _ = write_nexafs(w, T0, n=40)
    seq_num = 3  # in the primary stream (the baseline holds seq_num 1), among the events `show` samples
    _spoil(path, seq_num, BAD_VALUE if request.param == "value" else BAD_KEY)
    return path, uid, seq_num


def _named(exc: BaseException, uid: str, seq_num: int) -> None:
    assert isinstance(exc, BadJSONError), type(exc)
    text = str(exc)
    assert f"run {uid}" in text and f"seq_num {seq_num}" in text and "not UTF-8" in text, text
    assert exc.seq_num == seq_num and exc.run == uid


def test_arrow_and_plain_paths_raise_the_same(spoiled: tuple[Path, str, int]) -> None:
    path, uid, seq_num = spoiled
    db = Database(path)
    errors = []
    for read in (records.event_table, records.stream_events):  # Arrow's ranges, the plain decoder
        with pytest.raises(BadJSONError) as info:
            read(db, uid, "primary")
        _named(info.value, uid, seq_num)
        errors.append(str(info.value))
    with pytest.raises(BadJSONError) as small:  # one range only, as for a short run
        records.event_table(db, uid, "primary", chunk_events=1000)
    errors.append(str(small.value))
    assert len(set(errors)) == 1
    db.close()


def test_every_face_names_the_event(spoiled: tuple[Path, str, int]) -> None:
    path, uid, seq_num = spoiled
    from intake_resonance.faces.intake_readers import RunReader

    faces: dict[str, Any] = {
        "open_run_dataset": lambda: open_run_dataset(str(path), uid),
        "engine": lambda: xr.open_dataset(path, engine="resonance", group=uid),
        "datatree": lambda: xr.open_datatree(path, engine="resonance"),
        "intake v1": lambda: intake.open_resonance_beamtime(str(path))[uid].read(),
        "intake 2": lambda: RunReader(str(path), uid=uid).read(),
        "beamline Catalog": lambda: Catalog(path)[uid].table(),
    }
    for name, face in faces.items():
        with pytest.raises(BadJSONError) as info:
            face()
        _named(info.value, uid, seq_num)
        assert name


def test_command_line_and_check(spoiled: tuple[Path, str, int], tmp_path: Path) -> None:
    path, uid, seq_num = spoiled
    runner = CliRunner()
    for args in (["show", str(path), uid], ["export", str(path), uid, "-o", str(tmp_path / "x.nc")]):
        result = runner.invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and f"seq_num {seq_num}" in lines[0] and "not UTF-8" in lines[0], lines
    findings = [f for f in check(path) if f.seq_num == seq_num]
    assert findings and findings[0].run == uid


def test_served_by_tiled_as_a_422(spoiled: tuple[Path, str, int]) -> None:
    pytest.importorskip("tiled.server")
    from tiled.client import Context, from_context
    from tiled.client.utils import ClientError
    from tiled.server.app import build_app

    from intake_resonance.faces.tiled import beamtime_tree

    path, uid, seq_num = spoiled
    with Context.from_app(build_app(beamtime_tree(path))) as ctx:
        client = from_context(ctx)
        with pytest.raises(ClientError) as info:
            client[uid]["primary"].read()
    assert info.value.response.status_code == 422
    assert f"seq_num {seq_num}" in str(info.value) and "not UTF-8" in str(info.value)


def test_other_text_columns_are_bad_text(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path, seed=4) as w:
        uid, _ = write_nexafs(w, T0)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE runs SET operator = CAST(? AS TEXT)", (b"al\xffce",))
    conn.commit()
    conn.close()
    with pytest.raises(BadTextError) as info:
        open_run_dataset(str(path), uid)
    assert str(path) in str(info.value) and "not UTF-8" in str(info.value)


def test_a_lone_surrogate_escape_is_a_bad_value_and_skip_skips_it(tmp_path):
    import sqlite3
    from contextlib import closing

    from conftest import T0

    from intake_resonance import Catalog, RunSet, open_run_dataset
    from intake_resonance.beamtime.errors import BadJSONError
    from intake_resonance.tools.writer import BeamtimeWriter

    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        uids = []
        for k in range(2):
            uids.append(w.open_run("scan", time=T0 + 100 * k))
            w.open_stream("primary", {}, time=T0 + 100 * k)
            for i in range(3):
                w.write_event({"e": 1.0 * i, "note": "ok"}, time=T0 + 100 * k + i)
            w.close_run("success", time=T0 + 100 * k + 10)
    with closing(sqlite3.connect(path)) as con, con:  # valid JSON, but no text: "\ud800" alone
        con.execute("UPDATE events SET data = replace(data, '\"ok\"', '\"\\ud800\"') WHERE seq_num = 2 "
                    "AND stream_uid IN (SELECT uid FROM streams WHERE run_uid = ?)", (uids[0],))
    for read in (lambda: Catalog(path)[uids[0]].table(), lambda: open_run_dataset(path, uids[0]),
                 lambda: RunSet(path).events()):
        with pytest.raises(BadJSONError) as info:
            read()
        assert "seq_num 2" in str(info.value) and "lone surrogate" in str(info.value) and uids[0] in str(info.value)
    df = RunSet(path).events(errors="skip")
    assert df.attrs["skipped_runs"] == [uids[0]] and set(df.uid) == {uids[1]}
    st = RunSet(path).stack(errors="skip")
    assert st.attrs["skipped_runs"] == [uids[0]] and list(st.run.values) == [uids[1]]
