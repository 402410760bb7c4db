"""Crafted databases: a beamtime table must be a table, refused at open through every face.

A view (which runs whatever query it holds, each time it is read), a virtual
table or a generated column under a beamtime table's name is refused as not
a beamtime before any of them is read.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import intake
import pytest
import xarray as xr
from conftest import T0, write_nexafs
from hostile import beamtime_digest, cli_refuses, has_words, run_cli

from intake_resonance import Catalog
from intake_resonance.beamtime.errors import BeamtimeFormatError
from intake_resonance.beamtime.format import Database
from intake_resonance.tools.check import check
from intake_resonance.tools.writer import BeamtimeWriter

CRAFTED = {
    # A view that reads exactly the real rows: a reader that used it would work, so only refusal passes.
    "runs is a view": (
        ["ALTER TABLE runs RENAME TO runs_data", "CREATE VIEW runs AS SELECT * FROM runs_data"],
        "'runs' is a view, not a table",
    ),
    # Unbounded if it were ever read: it must be refused from the schema alone.
    "events is an endless view": (
        [
            "ALTER TABLE events RENAME TO events_data",
            "CREATE VIEW events AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
            "SELECT e.* FROM events_data e, n",
        ],
        "'events' is a view, not a table",
    ),
    "samples is a virtual table": (
        [
            "DROP TABLE samples",
            "CREATE VIRTUAL TABLE samples USING fts5(id, name, formula, serial, tags, beamline_pos, extra)",
        ],
        "'samples' is a virtual table, not a table",
    ),
    "a generated column": (
        [
            "DROP TABLE samples",
            "CREATE TABLE samples (id INTEGER PRIMARY KEY, name TEXT, formula TEXT, serial TEXT, tags TEXT, "
            "beamline_pos TEXT, extra TEXT GENERATED ALWAYS AS (hex(zeroblob(100000000))) VIRTUAL)",
        ],
        "generated column(s) extra",
    ),
}


@pytest.fixture(params=list(CRAFTED))
def crafted(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str, str]:
    path = tmp_path / "bt" / "beamtime.db"
    path.parent.mkdir()
    with BeamtimeWriter(path) as w:
        uid, _ = write_nexafs(w, T0)
    sql, words = CRAFTED[request.param]
    conn = sqlite3.connect(path)
    for statement in sql:
        conn.execute(statement)
    conn.commit()
    conn.close()
    return path, uid, words


def test_refused_through_every_face(crafted: tuple[Path, str, str]) -> None:
    path, uid, words = crafted
    before = beamtime_digest(path)
    for open_face in (
        lambda: Database(path),
        lambda: Catalog(path),
        lambda: list(intake.open_resonance_beamtime(str(path))),
        lambda: xr.open_dataset(path, engine="resonance", group=uid),
    ):
        with pytest.raises(BeamtimeFormatError) as info:
            open_face()
        has_words(str(info.value), path, words, "not a beamtime")
    cli_refuses("ls", path, words=(words,))
    cli_refuses("show", path, uid, words=(words,))
    [finding] = check(path)
    assert finding.level == "error" and words in finding.message
    result = run_cli("check", path)
    assert result.exit_code == 1 and words in result.stdout and "Traceback" not in result.stderr
    assert beamtime_digest(path) == before
