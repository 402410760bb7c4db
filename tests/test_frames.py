"""FrameStack: lazy, picklable, NumPy-like (n, x, y) view over a field's frames."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import T0

from intake_resonance.beamtime import records
from intake_resonance.beamtime.errors import FramesMissingError
from intake_resonance.beamtime.format import Database
from intake_resonance.beamtime.frames import FrameStack
from intake_resonance.tools.writer import BeamtimeWriter

N = 7


@pytest.fixture
def full(tmp_path: Path):
    """Seven 3x4 int32 frames, stored in an order unlike the events'."""
    path = tmp_path / "bt.db"
    frames = np.arange(N * 3 * 4, dtype=np.int32).reshape(N, 3, 4) * 3 - 40
    order = [3, 0, 6, 1, 5, 2, 4]
    with BeamtimeWriter(path) as w:
        uid = w.open_run("rsoxs", time=T0)
        w.open_stream("primary", {}, time=T0)
        for i in range(N):
            ev = w.write_event({"i": i}, time=T0 + i)
            w.write_image(ev, "img", frames[i], index=order[i])
    db = Database(path)
    stack = FrameStack(db.zarr_path, records.frame_refs(db, uid, "img", "primary"), db.path, run=uid, stream="primary", field="img")
    return stack, frames, path, uid


@pytest.fixture
def masked(tmp_path: Path):
    """Five events; a uint16 field with frames on events 0, 2, 3 only."""
    path = tmp_path / "bt.db"
    frames = np.arange(3 * 2 * 2, dtype=np.uint16).reshape(3, 2, 2) + 1
    with_frame = [0, 2, 3]
    with BeamtimeWriter(path) as w:
        uid = w.open_run("rsoxs", time=T0)
        w.open_stream("primary", {}, time=T0)
        evs = [w.write_event({"i": i}, time=T0 + i) for i in range(5)]
        for k, i in enumerate(with_frame):
            w.write_image(evs[i], "img", frames[k])
    db = Database(path)
    stack = FrameStack(db.zarr_path, records.frame_refs(db, uid, "img", "primary"))
    expected = np.full((5, 2, 2), np.nan)
    expected[with_frame] = frames
    return stack, expected


def test_shape_dtype_and_protocol(full) -> None:
    stack, frames, _, _ = full
    assert stack.shape == (N, 3, 4) and stack.dtype == np.int32 and stack.ndim == 3
    assert len(stack) == N and stack.size == frames.size and stack.nbytes == frames.nbytes
    assert not stack.masked
    assert "img" in repr(stack) and "(7, 3, 4)" in repr(stack)
    np.testing.assert_array_equal(np.asarray(stack), frames)
    assert np.asarray(stack, dtype=np.float64).dtype == np.float64


@pytest.mark.parametrize(
    "key",
    [
        0,
        3,
        N - 1,
        -1,
        -N,
        np.int64(2),
        np.uint8(4),
        np.int32(-2),
        np.array(5),
        slice(None),
        slice(1, 5),
        slice(None, None, -1),
        slice(5, 1, -2),
        slice(2, 2),
        slice(-3, None),
        slice(10, 20),
        [4, 0, 6],
        [6, 6, 1, 6],
        np.array([3, 1, 2]),
        np.array([-1, 0, -7]),
        np.array([], dtype=np.int64),
        [],
        np.array([[0, 1], [5, 4]]),
        (0,),
        (slice(None),),
        (slice(0, 3), slice(None), slice(None)),
        (slice(1, 4), slice(0, 2), slice(1, 3)),
        (slice(2, 6, 2), slice(None, None, -1)),
        (2, 1, 3),
        (2, slice(None), 0),
        (Ellipsis, 0),
        (Ellipsis, slice(1, 2), 3),
        (1, Ellipsis),
        Ellipsis,
        (),
        ([5, 1], slice(None), 2),
    ],
    ids=repr,
)
def test_indexing_matches_numpy(full, key) -> None:
    stack, frames, _, _ = full
    got = stack[key]
    want = frames[key]
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "key", [True, False, np.bool_(True), 1.0, np.float32(2), "0", b"0", None, [True, False] * 3 + [True], [0.5], {0}],
    ids=repr,
)
def test_other_keys_raise_type_error(full, key) -> None:
    stack = full[0]
    with pytest.raises(TypeError):
        stack[key]


@pytest.mark.parametrize("key", [N, -N - 1, 100, [0, N], np.array([-N - 1]), (N, 0)], ids=repr)
def test_out_of_range_raises_index_error(full, key) -> None:
    stack = full[0]
    with pytest.raises(IndexError, match="out of range"):
        stack[key]


def test_too_many_indices(full) -> None:
    stack = full[0]
    with pytest.raises(IndexError, match="too many"):
        stack[0, 0, 0, 0]
    with pytest.raises(IndexError, match="single ellipsis"):
        stack[..., 0, ...]


def test_masked_stack_promotes_and_keeps_positions(masked) -> None:
    stack, expected = masked
    assert stack.masked and stack.shape == (5, 2, 2)
    assert stack.dtype.kind == "f" and np.can_cast(np.uint16, stack.dtype)
    np.testing.assert_array_equal(stack[:], expected)
    assert np.isnan(stack[1]).all() and np.isnan(stack[-1]).all()
    np.testing.assert_array_equal(stack[2], expected[2])
    np.testing.assert_array_equal(stack[[4, 3, 1, 0]], expected[[4, 3, 1, 0]])
    assert stack[[1, 4]].dtype == stack.dtype


def test_second_field_on_some_events_only(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    det = np.arange(4 * 2 * 2, dtype=np.int32).reshape(4, 2, 2)
    with BeamtimeWriter(path) as w:
        uid = w.open_run("rsoxs", time=T0)
        w.open_stream("primary", {}, time=T0)
        for i in range(4):
            ev = w.write_event({"i": i}, time=T0 + i)
            w.write_image(ev, "det", det[i])
            if i in (1, 2):
                w.write_image(ev, "aux", np.full((3, 1), i, np.int8))
    db = Database(path)
    d = FrameStack(db.zarr_path, records.frame_refs(db, uid, "det", "primary"))
    a = FrameStack(db.zarr_path, records.frame_refs(db, uid, "aux", "primary"))
    assert d.dtype == np.int32 and not d.masked
    np.testing.assert_array_equal(d[:], det)
    assert a.shape == (4, 3, 1) and a.dtype.kind == "f"
    got = a[:]
    assert np.isnan(got[[0, 3]]).all()
    np.testing.assert_array_equal(got[1:3, :, 0], [[1, 1, 1], [2, 2, 2]])


def test_empty_stack(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        uid = w.open_run("scan", time=T0)
        w.open_stream("primary", {}, time=T0)
    db = Database(path)
    stack = FrameStack(db.zarr_path, records.frame_refs(db, uid, "det", "primary"))
    assert stack.shape == (0, 0, 0) and len(stack) == 0
    assert stack[:].shape == (0, 0, 0)
    with pytest.raises(IndexError):
        stack[0]


def test_pickle_drops_handles_and_reads_after(full) -> None:
    stack, frames, _, _ = full
    np.testing.assert_array_equal(stack[0], frames[0])  # opens an array
    assert stack._arrays
    blob = pickle.dumps(stack)
    clone = pickle.loads(blob)
    assert clone._arrays == {} and stack._arrays  # the original keeps its handle
    assert clone.shape == stack.shape and clone.dtype == stack.dtype and clone.run == stack.run
    np.testing.assert_array_equal(clone[::-1], frames[::-1])
    assert b"zarr" not in blob.replace(b".zarr", b"")  # no zarr objects travel


def test_dask_token_stable_across_opens(full) -> None:
    from dask.base import tokenize

    stack, _, path, uid = full
    db = Database(path)
    again = FrameStack(db.zarr_path, records.frame_refs(db, uid, "img", "primary"))
    assert stack.__dask_tokenize__() == again.__dask_tokenize__()
    assert tokenize(stack) == tokenize(again) == tokenize(pickle.loads(pickle.dumps(stack)))
    stack[0]  # reading does not change the token
    assert tokenize(stack) == tokenize(again)
    other = FrameStack(db.zarr_path, records.frame_refs(db, uid, "img"))
    assert tokenize(other) == tokenize(stack)  # same frames, same events


def test_dask_token_differs_between_fields(tmp_path: Path) -> None:
    from dask.base import tokenize

    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        uid = w.open_run("rsoxs", time=T0)
        w.open_stream("primary", {}, time=T0)
        ev = w.write_event({}, time=T0)
        w.write_image(ev, "a", np.zeros((2, 2), np.int32))
        w.write_image(ev, "b", np.zeros((2, 2), np.int32))
    db = Database(path)
    a = FrameStack(db.zarr_path, records.frame_refs(db, uid, "a", "primary"))
    b = FrameStack(db.zarr_path, records.frame_refs(db, uid, "b", "primary"))
    assert tokenize(a) != tokenize(b)


def test_nothing_read_before_indexing(full) -> None:
    _, frames, path, uid = full
    db = Database(path)
    refs = records.frame_refs(db, uid, "img", "primary")
    shutil.rmtree(db.zarr_path)
    stack = FrameStack(db.zarr_path, refs)  # building reads nothing
    assert stack.shape == (N, 3, 4)
    pickle.loads(pickle.dumps(stack))
    stack.__dask_tokenize__()
    with pytest.raises(FramesMissingError, match=str(db.zarr_path)):
        stack[0]
    assert not db.zarr_path.exists()


def test_works_inside_dask(full) -> None:
    import dask
    import dask.array as da

    stack, frames, _, _ = full
    arr = da.from_array(stack, chunks=(3, 3, 4), asarray=True, fancy=False)
    np.testing.assert_array_equal(arr.compute(scheduler="sync"), frames)
    np.testing.assert_array_equal(arr[2:6, 1:, ::2].compute(scheduler="sync"), frames[2:6, 1:, ::2])
    with dask.config.set(scheduler="processes", num_workers=2):  # pickled to other processes
        assert float(arr.sum().compute()) == float(frames.sum())


def test_reads_runs_and_scattered_frames(tmp_path: Path) -> None:
    # frames stored exactly in order: a long key mixes contiguous runs and jumps
    path = tmp_path / "bt.db"
    frames = np.arange(40 * 2 * 2, dtype=np.int16).reshape(40, 2, 2)
    with BeamtimeWriter(path) as w:
        uid = w.open_run("rsoxs", time=T0)
        w.open_stream("primary", {}, time=T0)
        for i in range(40):
            w.write_image(w.write_event({}, time=T0 + i), "img", frames[i])
    db = Database(path)
    stack = FrameStack(db.zarr_path, records.frame_refs(db, uid, "img", "primary"))
    for key in ([0, 5, 10, 15, 20, 25, 30, 35], list(range(3, 17)) + [20, 21], [39, 0, 39, 1, 2, 3], slice(None, None, 3)):
        np.testing.assert_array_equal(stack[key], frames[key])


def test_big_endian_zarr2_array_matches_dtype_name(tmp_path: Path) -> None:
    # image_refs records the dtype name: 'int32' also for a big-endian '>i4' array
    import zarr

    path = tmp_path / "bt.db"
    frames = np.arange(2 * 3 * 2, dtype=">i4").reshape(2, 3, 2)
    with BeamtimeWriter(path, zarr_format=2) as w:
        uid = w.open_run("rsoxs", time=T0)
        w.open_stream("primary", {}, time=T0)
        group = zarr.open_group(str(w.zarr_path), mode="a", zarr_format=2)
        arr = group.create_array(f"runs/{uid}/img", shape=(2, 3, 2), chunks=(1, 3, 2), dtype=">i4")
        arr[:] = frames
        for i in range(2):
            ev = w.write_event({}, time=T0 + i)
            w._insert_ref(ev, "img", f"runs/{uid}/img", i, (3, 2), frames.dtype.name)
    db = Database(path)
    refs = records.frame_refs(db, uid, "img", "primary")
    assert refs.dtype == "int32"
    got = FrameStack(db.zarr_path, refs)[:]
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, frames)
