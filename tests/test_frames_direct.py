"""FrameStack's direct zstd path gives exactly what Zarr gives, and steps aside when it should."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import T0

from intake_resonance import records
from intake_resonance.format import Database
from intake_resonance.frames import FrameStack
from intake_resonance.writer import BeamtimeWriter

N = 9


def _write(path: Path, frames: np.ndarray, zarr_format: int = 3, order: list[int] | None = None) -> str:
    with BeamtimeWriter(path, zarr_format=zarr_format) as w:
        uid = w.open_run("rsoxs", time=T0)
        w.open_stream("primary", {}, time=T0)
        for i, frame in enumerate(frames):
            ev = w.write_event({"i": i}, time=T0 + i)
            w.write_image(ev, "img", frame, index=None if order is None else order[i])
    return uid


def _stack(path: Path, uid: str) -> FrameStack:
    db = Database(path)
    return FrameStack(db.zarr_path, records.frame_refs(db, uid, "img", "primary"), db.path, run=uid, field="img")


def _zarr(path: Path, uid: str) -> zarr.Array:
    return zarr.open_array(str(path.with_suffix(".zarr")), path=f"runs/{uid}/img", mode="r")


@pytest.fixture
def frames() -> np.ndarray:
    rng = np.random.default_rng(5)
    out = rng.poisson(30, size=(N, 16, 12)).astype(np.int32)
    out[4] = 0  # all fill value: Zarr writes no chunk file for it
    return out


@pytest.mark.parametrize("dtype", ["int32", "uint16", "float64", "uint8"])
def test_direct_path_equals_zarr(tmp_path: Path, frames: np.ndarray, dtype: str) -> None:
    path = tmp_path / "bt.db"
    uid = _write(path, frames.astype(dtype))
    stack = _stack(path, uid)
    expected = _zarr(path, uid)[:]
    out = stack[:]
    assert stack._direct[0] is not None  # the beamline's layout takes the direct path
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(stack[[8, 0, 4, 0, 3]], expected[[8, 0, 4, 0, 3]])
    np.testing.assert_array_equal(stack[5], expected[5])
    np.testing.assert_array_equal(stack[7:1:-2, 3:5], expected[7:1:-2, 3:5])


def test_missing_chunk_reads_fill_value(tmp_path: Path, frames: np.ndarray) -> None:
    path = tmp_path / "bt.db"
    uid = _write(path, frames)
    chunk = path.with_suffix(".zarr") / "runs" / uid / "img" / "c" / "4" / "0" / "0"
    assert not chunk.exists()
    np.testing.assert_array_equal(_stack(path, uid)[4], np.zeros((16, 12), np.int32))


def test_out_of_order_storage(tmp_path: Path, frames: np.ndarray) -> None:
    path = tmp_path / "bt.db"
    order = [3, 0, 8, 1, 5, 2, 4, 7, 6]
    uid = _write(path, frames, order=order)
    np.testing.assert_array_equal(_stack(path, uid)[:], frames)


def test_corrupt_chunk_raises_as_zarr_does(tmp_path: Path, frames: np.ndarray) -> None:
    path = tmp_path / "bt.db"
    uid = _write(path, frames)
    chunk = path.with_suffix(".zarr") / "runs" / uid / "img" / "c" / "2" / "0" / "0"
    chunk.write_bytes(b"not zstd at all")
    with pytest.raises(Exception) as from_zarr:
        _zarr(path, uid)[2]
    stack = _stack(path, uid)
    with pytest.raises(type(from_zarr.value)):
        stack[2]
    with pytest.raises(type(from_zarr.value)):
        stack[:]  # also when the bad frame is read on a pool thread
    np.testing.assert_array_equal(stack[3], frames[3])


def test_zarr_format_2_goes_through_zarr(tmp_path: Path, frames: np.ndarray) -> None:
    path = tmp_path / "bt.db"
    uid = _write(path, frames, zarr_format=2)
    stack = _stack(path, uid)
    np.testing.assert_array_equal(stack[:], frames)
    assert stack._direct[0] is None


def test_pickled_stack_reopens_direct_reader(tmp_path: Path, frames: np.ndarray) -> None:
    path = tmp_path / "bt.db"
    uid = _write(path, frames)
    stack = _stack(path, uid)
    stack[0]
    copy = pickle.loads(pickle.dumps(stack))
    assert copy._direct == {} and copy._arrays == {}
    np.testing.assert_array_equal(copy[:], frames)


@pytest.mark.parametrize("nbytes", [0, 10, 255, 300, 65_791, 70_000, 5_000_000])
def test_zstd_header_size_matches_content(nbytes: int) -> None:
    from numcodecs.zstd import Zstd

    from intake_resonance.frames import _zstd_content_size

    data = np.random.default_rng(nbytes).integers(0, 4, nbytes, dtype=np.uint8).tobytes()
    size = _zstd_content_size(Zstd().encode(data))
    assert size == nbytes or (size is None and nbytes == 0)
    assert _zstd_content_size(b"\x00" * 12) is None


def test_chunk_of_wrong_size_raises_as_zarr_does(tmp_path: Path, frames: np.ndarray) -> None:
    from numcodecs.zstd import Zstd

    path = tmp_path / "bt.db"
    uid = _write(path, frames)
    chunk = path.with_suffix(".zarr") / "runs" / uid / "img" / "c" / "1" / "0" / "0"
    chunk.write_bytes(Zstd().encode(frames[1, :8].tobytes()))  # valid zstd, half a frame
    with pytest.raises(Exception) as from_zarr:
        _zarr(path, uid)[1]
    with pytest.raises(type(from_zarr.value)):
        _stack(path, uid)[1]
