"""The naming rule for hostile field names (intake_resonance.beamtime.names)."""

from __future__ import annotations

import pytest

from intake_resonance.beamtime.names import ORIGINAL_NAME_ATTR, image_dims, is_safe, original_name, renamed_attrs, variable_names


def _all_names(mapping: dict[str, str], images: list[str]) -> list[str]:
    names = ["time", "seq_num", *mapping.values()]
    for field in images:
        names += image_dims(mapping[field])
    return names


def test_safe_names_are_kept() -> None:
    fields = ["energy_position", "i0", "hos", "a.b", "Ü-x"]
    assert variable_names(fields, ["detector_image"]) == {f: f for f in [*fields, "detector_image"]}


@pytest.mark.parametrize(
    ("scalars", "images", "expected"),
    [
        (["time", "seq_num"], [], {"time": "time_1", "seq_num": "seq_num_1"}),
        (["time", "time_1"], [], {"time_1": "time_1", "time": "time_2"}),  # a clean name keeps it
        (["a/b", "a_b"], [], {"a_b": "a_b", "a/b": "a_b_1"}),  # differing only by an illegal character
        (["a\0b", "a/b", "a_b"], [], {"a_b": "a_b", "a\0b": "a_b_1", "a/b": "a_b_2"}),
        ([""], [], {"": "field"}),
        (["", "field"], [], {"field": "field", "": "field_1"}),
        (["/"], [], {"/": "_"}),
        (["det_x"], ["det"], {"det": "det", "det_x": "det_x_1"}),  # a frame dimension's name
        (["det"], ["det"], {"det": "det"}),  # named twice: one variable
        ([], ["time"], {"time": "time_1"}),
        ([], ["a", "a_x"], {"a": "a", "a_x": "a_x_1"}),
    ],
)
def test_hostile_names(scalars: list[str], images: list[str], expected: dict[str, str]) -> None:
    got = variable_names(scalars, images)
    assert got == expected
    names = _all_names(got, list(dict.fromkeys(images)))
    assert len(names) == len(set(names))  # unique: variables, coordinates and frame dimensions
    assert all(is_safe(n) for n in names)


def test_rule_is_stable_and_total() -> None:
    fields = ["x", "x/", "x\0", "", "time", "seq_num", "x_", "x__1"]
    first = variable_names(fields, ["img", "img/"])
    assert first == variable_names(fields, ["img", "img/"])
    assert set(first) == {*fields, "img", "img/"}  # no field lost
    assert len(set(first.values())) == len(first)




# ------------------------------------------------------------ through the faces
HOSTILE_EVENT = {"time": 1.5, "seq_num": 7, "a/b": 2.0, "a_b": 3.0, "a\0b": 4.0, "": 5.0, "det_x": 6.0, "energy": 280.0}


@pytest.fixture
def hostile_bt(tmp_path):  # noqa: ANN001, ANN201
    import numpy as np
    from conftest import T0

    from intake_resonance.tools.writer import BeamtimeWriter

    path = tmp_path / "bt" / "beamtime.db"
    path.parent.mkdir()
    frames = np.arange(3 * 4 * 5, dtype=np.int32).reshape(3, 4, 5)
    keys = {k: {"dtype": "number", "units": "u"} for k in HOSTILE_EVENT}
    keys["det"] = {"dtype": "int32", "external": True, "shape": [4, 5]}
    with BeamtimeWriter(path) as w:
        uid = w.open_run("scan", time=T0)
        w.open_stream("primary", keys, time=T0)
        for i in range(3):
            ev = w.write_event({k: v + i for k, v in HOSTILE_EVENT.items()}, time=T0 + i)
            w.write_image(ev, "det", frames[i])
        w.close_run("success", time=T0 + 5)
    return path, uid, frames


EXPECTED = {"time": "time_1", "seq_num": "seq_num_1", "a_b": "a_b", "a/b": "a_b_1", "a\0b": "a_b_2",
            "": "field", "det_x": "det_x_1", "energy": "energy"}


@pytest.mark.parametrize("face", ["intake", "engine"])
def test_hostile_names_open_with_every_value(hostile_bt, face: str) -> None:  # noqa: ANN001
    import numpy as np
    from hostile import FACES, beamtime_digest

    path, uid, frames = hostile_bt
    before = beamtime_digest(path)
    ds = FACES[face](path, uid)
    for field, var in EXPECTED.items():
        np.testing.assert_array_equal(ds[var].values, [HOSTILE_EVENT[field] + i for i in range(3)])
        assert ds[var].attrs["units"] == "u"
        assert original_name(var, ds[var].attrs) == field
        assert ds[var].attrs.get(ORIGINAL_NAME_ATTR) == (None if var == field or "\0" in field else field)
    assert ds["seq_num"].values.tolist() == [1, 2, 3]  # the coordinate is untouched
    assert ds["det"].dims == ("time", "det_x", "det_y")
    np.testing.assert_array_equal(ds["det"].values, frames)
    assert beamtime_digest(path) == before


def test_hostile_names_through_facade_and_cli(hostile_bt, tmp_path) -> None:  # noqa: ANN001
    import xarray as xr
    from hostile import beamtime_digest, run_cli

    from intake_resonance import Catalog

    path, uid, frames = hostile_bt
    before = beamtime_digest(path)
    with Catalog(path) as cat:  # the beamline's table keeps the names as stored
        table = cat[uid].table()
    assert table["a\0b"].tolist() == [4.0, 5.0, 6.0] and table[""].tolist() == [5.0, 6.0, 7.0]
    assert run_cli("show", path, uid).exit_code == 0
    for suffix in (".nc", ".zarr"):
        out = tmp_path / f"x{suffix}"
        result = run_cli("export", path, uid, "-o", out, "-q")
        assert result.exit_code == 0, result.stderr
        with xr.open_dataset(out, engine="h5netcdf" if suffix == ".nc" else "zarr") as ds:
            assert ds["a_b_1"].attrs[ORIGINAL_NAME_ATTR] == "a/b" and ds["time_1"].values.tolist() == [1.5, 2.5, 3.5]
            assert original_name("a_b_2", ds["a_b_2"].attrs) == "a\0b"
    assert beamtime_digest(path) == before


@pytest.mark.parametrize("field", ["time", "a/b", "a\0b", "", '"q"'])
def test_original_name_round_trips(field: str) -> None:
    var = variable_names([field])[field]
    attrs = renamed_attrs(field, var)
    assert original_name(var, attrs) == field
    assert all("\0" not in v for v in attrs.values())
