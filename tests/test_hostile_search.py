"""Search finds what the beamline wrote: JSON escapes, any letter case, NUL, long lists, wrong types."""

from __future__ import annotations

import json
import pickle
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import intake
import pytest
from conftest import T0, write_nexafs, write_rsoxs
from hostile import beamtime_digest

from intake_resonance.beamtime import records
from intake_resonance.beamtime.errors import BeamtimeError, SearchCriterionError
from intake_resonance.beamtime.format import Database
from intake_resonance.beamtime.sql_functions import json_equal, text_match
from intake_resonance.faces.intake_readers import RunCatalog
from intake_resonance.tools.writer import BeamtimeWriter

GROESSE = {"title": "Größe der Domänen", "Über": "ja", "edge": "C", "nested": {"Ölfilm": ["Ü", 1]}}


@pytest.fixture(scope="module")
def bt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Runs whose metadata the beamline wrote with ``json.dumps`` (non-ASCII as \\u escapes), and hostile rows."""
    path = tmp_path_factory.mktemp("search") / "bt.db"
    uids: dict[str, str] = {}
    with BeamtimeWriter(path) as w:
        uids["groesse"] = write_nexafs(w, T0, sample="Ölfilm")[0]
        uids["plain"] = write_rsoxs(w, T0 + 100, sample="PS")[0]
        uids["juergen"] = w.open_run("scan", sample="PS", time=T0 + 200, operator="jürgen", metadata={"edge": "N"})
        w.close_run("success", time=T0 + 201)
        uids["broken"] = w.open_run("scan", time=T0 + 300, metadata={"edge": "C"})
        w.close_run("success", time=T0 + 301)
        uids["blob"] = w.open_run("scan", time=T0 + 400, metadata={"edge": "C"})
        w.close_run("success", time=T0 + 401)
        uids["nometa"] = w.open_run("scan", time=T0 + 500)
        w.close_run("success", time=T0 + 501)
        uids["nan"] = w.open_run("scan", time=T0 + 600)
        w.close_run("success", time=T0 + 601)
    conn = sqlite3.connect(path)
    try:
        with conn:  # what the beamline's writer stores: json.dumps, ensure_ascii as Python's default
            conn.execute("UPDATE runs SET metadata = ? WHERE uid = ?", (json.dumps(GROESSE), uids["groesse"]))
            conn.execute("UPDATE runs SET metadata = ? WHERE uid = ?", ('{"edge": "C", "title": "Gr', uids["broken"]))
            conn.execute("UPDATE runs SET metadata = ? WHERE uid = ?", (b"\x00\xff{}", uids["blob"]))
            conn.execute("UPDATE runs SET metadata = NULL WHERE uid = ?", (uids["nometa"],))
            # json.dumps writes NaN, which SQLite's JSON functions refuse
            conn.execute("UPDATE runs SET metadata = ? WHERE uid = ?", (json.dumps({"T": float("nan"), "Stoß": "Ja"}), uids["nan"]))
        stored = conn.execute("SELECT metadata FROM runs WHERE uid = ?", (uids["groesse"],)).fetchone()[0]
    finally:
        conn.close()
    assert "\\u00f6" in stored and "ö" not in stored  # escapes, exactly as json.dumps writes them
    return path, uids


def _intake_v1(path: Path) -> Iterator[Callable[..., list[str]]]:
    cat = intake.open_resonance_beamtime(str(path))
    try:
        yield lambda *a, **kw: list(cat.search(*a, **kw))
    finally:
        cat.close()


def _intake_2(path: Path) -> Iterator[Callable[..., list[str]]]:
    runs = RunCatalog.from_beamtime(path)
    yield lambda *a, **kw: list(runs.search(*a, **kw))


def _records(path: Path) -> Iterator[Callable[..., list[str]]]:
    with Database(path) as db:
        yield lambda text=None, **kw: records.list_uids(
            db, records.RunQuery().narrow(**kw, **({} if text is None else {"text": text}))
        )


FACES = {"intake": _intake_v1, "intake2": _intake_2, "records": _records}


@pytest.fixture(params=sorted(FACES))
def search(request: pytest.FixtureRequest, bt: tuple[Path, dict[str, str]]) -> Iterator[Callable[..., list[str]]]:
    yield from FACES[request.param](bt[0])


def test_text_reads_json_escapes_in_any_case(bt: tuple[Path, dict[str, str]], search: Callable[..., list[str]]) -> None:
    path, uids = bt
    before = beamtime_digest(path)
    groesse, juergen = [uids["groesse"]], [uids["juergen"]]
    for text in ("Größe", "größe", "GRÖSSE", "grösse", "domänen", "DOMÄNEN"):
        assert search(text) == groesse, text
    assert search("über") == search("ÜBER") == groesse  # a key, decoded and folded
    assert search("ölfilm") == groesse  # the sample's name and a nested key
    assert search("JÜRGEN") == search("Jürgen") == juergen  # the operator column
    assert search("Ü") == groesse + juergen
    assert search("ß") == groesse + [uids["nan"]]  # "ss", casefolded: Größe and Stoß
    assert search("STOSS") == search("stoß") == [uids["nan"]]
    # metadata that is not JSON still matches on its text as stored
    assert search("gr") == [uids["groesse"], uids["broken"]]
    assert search("edge") == [uids[k] for k in ("groesse", "plain", "juergen", "broken")]
    assert search(uids["plain"][:10].upper()) == [uids["plain"]]
    assert search("zzz") == []
    assert beamtime_digest(path) == before


def test_nul_matches_nothing(bt: tuple[Path, dict[str, str]], search: Callable[..., list[str]]) -> None:
    for text in ("\0", "Gr\0", "\0%", "%", "_", "\\"):
        assert search(text) == [], repr(text)
    assert search(plan_name="scan\0") == [] and search(plan_name=["scan\0", "x\0"]) == []
    assert search(edge="C\0") == []


def test_nul_in_a_uid_prefix_finds_nothing(bt: tuple[Path, dict[str, str]]) -> None:
    path, uids = bt
    with Database(path) as db:
        assert records.match_uids(db, uids["plain"][:8] + "\0zz") == []
        with pytest.raises(KeyError):
            records.resolve_uid(db, uids["plain"][:8] + "\0zz")
        assert records.resolve_uid(db, uids["plain"][:8]) == uids["plain"]


def test_metadata_keys_and_values_as_written(bt: tuple[Path, dict[str, str]], search: Callable[..., list[str]]) -> None:
    _, uids = bt
    groesse = [uids["groesse"]]
    assert search(metadata={"Über": "ja"}) == groesse  # a key json.dumps escaped
    assert search(title="Größe der Domänen") == groesse  # a value json.dumps escaped
    assert search(nested={"Ölfilm": ["Ü", 1]}) == groesse  # nested values compare as JSON
    assert search(nested={"Ölfilm": ["Ü", 1.0]}) == []
    assert search(edge="C") == [uids["groesse"], uids["plain"]]  # broken and BLOB rows match nothing, and fail nothing
    assert search(edge=None) == [uids["nometa"], uids["nan"]]  # null or missing
    assert search(Stoß="Ja") == [uids["nan"]] and search(Stoß="ja") == search(T=1.0) == []  # NaN-holding metadata read in Python
    assert search(title="Größe der domänen") == []  # exact means exact


def test_lists_of_any_length(bt: tuple[Path, dict[str, str]], search: Callable[..., list[str]]) -> None:
    _, uids = bt
    many = [f"plan{i}" for i in range(5000)]
    assert search(plan_name=[*many, "rsoxs"]) == [uids["plain"]]
    assert search(plan_name=many) == []
    no_sample = [uids[k] for k in ("broken", "blob", "nometa", "nan")]
    assert search(sample=[*many, "Ölfilm", None]) == [uids["groesse"], *no_sample]
    assert search(plan_name=[]) == []
    assert search(operator=["jürgen"] * 2000) == [uids["juergen"]]


WRONG: list[tuple[dict[str, Any], str]] = [
    ({"plan_name": {"a": 1}}, "plan_name"),
    ({"sample": ["PS", {"name": "PS"}]}, "sample"),
    ({"exit_status": b"success"}, "exit_status"),
    ({"operator": True}, "operator"),
    ({"metadata": ["edge", "C"]}, "metadata"),
    ({"metadata": "edge"}, "metadata"),
    ({"text": ["Größe"]}, "text"),
    ({"text": {"q": 1}}, "text"),
    ({"since": {"t": 1}}, "since"),
    ({"until": "not a time"}, "until"),
    ({"edge": {1, 2}}, "edge"),
    ({"plan_name": float("nan")}, "plan_name"),
    ({"text": "\ud800"}, "text"),
    ({"metadata": {"k": "\udfff"}}, "metadata.k"),
]


@pytest.mark.parametrize(("criteria", "name"), WRONG, ids=[n + str(i) for i, (_, n) in enumerate(WRONG)])
def test_wrong_types_name_the_criterion(search: Callable[..., list[str]], criteria: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError) as info:
        search(**criteria)
    err = info.value
    assert isinstance(err, SearchCriterionError) and isinstance(err, BeamtimeError)
    assert f"search criterion '{name}'" in str(err)
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is SearchCriterionError and str(clone) == str(err)


def test_from_dicts_refuses_what_is_not_criteria() -> None:
    with pytest.raises(SearchCriterionError, match="'criteria'"):
        records.RunQuery.from_dicts("plan_name=rsoxs")
    with pytest.raises(SearchCriterionError, match="'criteria'"):
        records.RunQuery.from_dicts([["plan_name", "rsoxs"]])
    query = records.RunQuery().narrow(plan_name=["a", None], text="Größe", metadata={"Über": [1]})
    assert records.RunQuery.from_dicts(query.as_dict_list()) == query  # catalog arguments round-trip


def test_sql_functions_never_raise() -> None:
    assert text_match("größe", "u", "p", None, None, json.dumps({"k": "GRÖSSE"})) == 0  # casefold: "grösse"
    assert text_match("grösse", "u", "p", None, None, json.dumps({"k": "GRÖSSE"})) == 1
    assert text_match("x", b"\xff", 3, 2.5, None, b"\x00x") == 1
    deep = "[" * 5000 + '"\\u00fc"' + "]" * 5000
    assert text_match("ü", "u", "p", None, None, deep) == 0  # too deep to decode: no match, no RecursionError
    assert text_match(None, "u", "p", None, None, None) == 0
    assert json_equal('{"a": [1, "\\u00fc"]}', '{"a":[1,"ü"]}') == 1
    assert json_equal("[", "[]") == json_equal(b"[]", "[]") == json_equal("[1]", "[true]") == 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:Using `httpx` with `starlette.testclient`")
def test_tiled_full_text(bt: tuple[Path, dict[str, str]]) -> None:
    pytest.importorskip("tiled.server")
    from tiled.client import Context, from_context
    from tiled.queries import Eq, FullText, In
    from tiled.server.app import build_app

    from intake_resonance.faces.tiled import beamtime_tree

    path, uids = bt
    with Context.from_app(build_app(beamtime_tree(path))) as ctx:
        c = from_context(ctx)
        assert list(c.search(FullText("GRÖSSE"))) == [uids["groesse"]]
        assert list(c.search(FullText("\0"))) == []
        assert list(c.search(Eq("Über", "ja"))) == [uids["groesse"]]
        assert list(c.search(In("plan_name", [f"p{i}" for i in range(1500)] + ["rsoxs"]))) == [uids["plain"]]


def test_a_search_answer_depends_on_its_criteria_not_on_what_was_asked_before(tmp_path: Path) -> None:
    """JSON true, 1, 1.0 and "1" are different values; the runs-table cache must never hand one's table to another."""
    path = tmp_path / "typed.db"
    flags: list[Any] = [True, 1, 1.0, "1", [1], False, 0]
    uids = []
    with BeamtimeWriter(path) as w:
        for i, flag in enumerate(flags):
            uids.append(w.open_run("scan", time=T0 + 10 * i, metadata={"flag": flag, "n": [1] if i == 4 else i}))
            w.close_run(time=T0 + 10 * i + 5)
    want = {"true": [uids[0]], "1": [uids[1], uids[2]], "false": [uids[5]], "0": [uids[6]], '"1"': [uids[3]], "[1]": [uids[4]]}
    asked: list[Any] = [1, True, 1.0, "1", False, 0, [1]]
    for order in (asked, asked[::-1]):
        bt = intake.open_resonance_beamtime(str(path))
        for value in order:
            key = "1" if value == 1.0 and not isinstance(value, bool) else json.dumps(value)
            assert bt.search(flag=value).to_dataframe().uid.tolist() == want[key], value
            assert list(bt.search(flag=value)) == want[key], value
    assert list(intake.open_resonance_beamtime(str(path)).search(n=[1])) == [uids[4]]  # a list matches, no TypeError


def test_one_vocabulary_and_no_silent_empty_answer(bt: tuple[Path, dict[str, str]], search: Callable[..., list[str]]) -> None:
    """The names entry metadata and Dataset attrs use are search names too; a name nothing has is an error."""
    _, uids = bt
    assert search(sample_name="Ölfilm") == search(sample="Ölfilm") == [uids["groesse"]]
    assert search(plan="rsoxs") == search(plan_name="rsoxs") and search(plan="rsoxs")
    assert search(status="success") == search(exit_status="success")
    for misspelt in ({"sampel": "PS"}, {"plan_nmae": "rsoxs"}, {"stauts": None}):
        with pytest.raises(SearchCriterionError, match=rf"no run has .* {next(iter(misspelt))!r}.*search takes plan_name, sample"):
            search(**misspelt)
    assert search(metadata={"sampel": "PS"}) == []  # asked for as metadata: a key no run has yet matches nothing
    assert search(Stoß="Ja") == [uids["nan"]]  # a key only metadata SQLite cannot read (NaN) holds is known too


def test_the_exact_uid_wins_and_case_is_folded_only_for_hex_that_is_no_uid(tmp_path: Path) -> None:
    path = tmp_path / "case.db"
    with BeamtimeWriter(path) as w:
        lower = w.open_run("scan", time=T0)
        w.close_run(time=T0 + 1)
        other = w.open_run("scan", time=T0 + 10)
        w.close_run(time=T0 + 11)
    upper = lower.upper()
    with closing(sqlite3.connect(path)) as conn, conn:  # a crafted file: a second run whose uid is the first's in capitals
        conn.execute("UPDATE runs SET uid = ? WHERE uid = ?", (upper, other))
    with Database(path) as db:
        assert records.resolve_uid(db, upper) == upper and records.resolve_uid(db, lower) == lower
        assert records.resolve_uid(db, upper[:8]) == upper and records.resolve_uid(db, lower[:8]) == lower
        with pytest.raises(BeamtimeError, match="no run"):
            records.resolve_uid(db, lower[:8] + "é")  # non-ASCII: no run, no error of another kind
        with pytest.raises(BeamtimeError, match="100000 characters is no uid") as err:
            records.resolve_uid(db, "a" * 100_000)
        assert "SQLite" not in str(err.value)
    cat = intake.open_resonance_beamtime(str(path))
    assert cat[upper].describe()["args"]["uid"] == upper and cat[lower].describe()["args"]["uid"] == lower
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("DELETE FROM runs WHERE uid = ?", (upper,))
    with Database(path) as db:  # only the lowercase run: capitals are hex no beamline uid has, folded
        assert records.resolve_uid(db, upper) == lower and records.resolve_uid(db, upper[:10]) == lower
