"""The direct zstd reader: used for the beamline's layout, logged when it steps aside, never wrong."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import dask
import numpy as np
import pytest
import zarr
from conftest import T0

from intake_resonance.beamtime import records
from intake_resonance.beamtime.errors import FrameDecodeError, FramesMissingError
from intake_resonance.beamtime.format import Database
from intake_resonance.beamtime.frames import FrameStack
from intake_resonance.beamtime.store import BeamtimeStore
from intake_resonance.beamtime.zstd_frames import ZstdFrames, decode_threads, layout_mismatch, zstd_content_size
from intake_resonance.tools.writer import BeamtimeWriter

N = 9
LOGGER = "intake_resonance.beamtime.zstd_frames"


def _write(path: Path, frames: np.ndarray, zarr_format: int = 3, order: list[int] | None = None) -> str:
    with BeamtimeWriter(path, zarr_format=zarr_format) as w:
        uid = w.open_run("rsoxs", time=T0)
        w.open_stream("primary", {}, time=T0)
        for i, frame in enumerate(frames):
            ev = w.write_event({"i": i}, time=T0 + i)
            w.write_image(ev, "img", frame, index=None if order is None else order[i])
    return uid


def _stack(path: Path, uid: str) -> FrameStack:
    with Database(path) as db:
        refs = records.frame_refs(db, uid, "img", "primary")
    return FrameStack(path.with_suffix(".zarr"), refs, path, run=uid, stream="primary", field="img")


def _zarr(path: Path, uid: str) -> zarr.Array:
    return zarr.open_array(str(path.with_suffix(".zarr")), path=f"runs/{uid}/img", mode="r")


def _chunk(path: Path, uid: str, i: int) -> Path:
    return path.with_suffix(".zarr") / "runs" / uid / "img" / "c" / str(i) / "0" / "0"


@pytest.fixture
def frames() -> np.ndarray:
    rng = np.random.default_rng(5)
    out = rng.poisson(30, size=(N, 16, 12)).astype(np.int32)
    out[4] = 0  # all fill value: the writer still stores its chunk
    return out


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Frames read by the direct reader."""
    seen: list[int] = []
    real = ZstdFrames.read

    def read(self: ZstdFrames, idx: np.ndarray, rows: np.ndarray, out: np.ndarray) -> None:
        seen.extend(idx.tolist())
        real(self, idx, rows, out)

    monkeypatch.setattr(ZstdFrames, "read", read)
    return seen


@pytest.mark.parametrize("dtype", ["int32", "uint16", "float64", "uint8"])
def test_the_writers_layout_takes_the_direct_path(
    tmp_path: Path, frames: np.ndarray, dtype: str, spy: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bt.db"
    uid = _write(path, frames.astype(dtype))
    expected = _zarr(path, uid)[:]
    # Fails (with the reason) the day a zarr or numcodecs release changes what this checks.
    assert layout_mismatch(_zarr(path, uid)) is None
    stack = _stack(path, uid)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        out = stack[:]
    assert not caplog.records  # no fallback
    assert sorted(spy) == list(range(N))  # every frame decoded by the direct reader
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(stack[[8, 0, 4, 0, 3]], expected[[8, 0, 4, 0, 3]])
    np.testing.assert_array_equal(stack[5], expected[5])
    np.testing.assert_array_equal(stack[7:1:-2, 3:5], expected[7:1:-2, 3:5])


def test_masked_stack_takes_the_direct_path_and_casts(tmp_path: Path, frames: np.ndarray, spy: list[int]) -> None:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        uid = w.open_run("rsoxs", time=T0)
        w.open_stream("primary", {}, time=T0)
        for i in range(3):
            ev = w.write_event({"i": i}, time=T0 + i)
            if i != 1:
                w.write_image(ev, "img", frames[i])
    out = _stack(path, uid)[:]
    assert out.dtype == np.float64 and spy == [0, 1]
    np.testing.assert_array_equal(out[[0, 2]], frames[[0, 2]])
    assert np.isnan(out[1]).all()


@pytest.mark.parametrize(
    ("layout", "reason"),
    [
        ({"zarr_format": 2}, "Zarr format 2"),
        ({"chunks": (3, 16, 12)}, "chunks (3, 16, 12)"),
        ({"compressors": zarr.codecs.BloscCodec()}, "not bytes + zstd"),
        ({"compressors": None}, "not bytes + zstd"),
        ({"shards": (3, 16, 12), "chunks": (1, 16, 12)}, "sharded"),
    ],
)
def test_other_layouts_go_through_zarr_and_say_why(
    tmp_path: Path, frames: np.ndarray, layout: dict, reason: str, spy: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bt.db"
    uid = _write(path, frames)
    kwargs = {"chunks": (1, 16, 12), **layout}
    arr = zarr.create_array(
        str(path.with_suffix(".zarr")), name=f"runs/{uid}/img", shape=frames.shape, dtype="int32", overwrite=True,
        config={"write_empty_chunks": True}, **kwargs,
    )
    arr[:] = frames
    with caplog.at_level(logging.INFO, logger=LOGGER):
        out = _stack(path, uid)[:]
    np.testing.assert_array_equal(out, frames)
    assert spy == []
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(messages) == 1 and f"runs/{uid}/img" in messages[0] and "read through Zarr" in messages[0]
    assert reason in messages[0]


def test_out_of_order_storage(tmp_path: Path, frames: np.ndarray) -> None:
    path = tmp_path / "bt.db"
    order = [3, 0, 8, 1, 5, 2, 4, 7, 6]
    uid = _write(path, frames, order=order)
    np.testing.assert_array_equal(_stack(path, uid)[:], frames)


def test_absent_chunk_is_an_error_not_zeros(tmp_path: Path, frames: np.ndarray) -> None:
    path = tmp_path / "bt.db"
    uid = _write(path, frames)
    _chunk(path, uid, 4).unlink()
    stack = _stack(path, uid)
    for key in (4, slice(None), [3, 4, 5]):
        with pytest.raises(FramesMissingError) as info:
            stack[key]
        msg = str(info.value)
        for words in ("c/4/0/0", "absent", f"run {uid}", "stream primary", "seq_num 5", "field img"):
            assert words in msg
    np.testing.assert_array_equal(stack[3], frames[3])
    with dask.config.set({"resonance.absent-chunks": "fill"}):  # read as Zarr does, when asked
        np.testing.assert_array_equal(stack[4], np.zeros((16, 12), np.int32))


@pytest.mark.parametrize(
    "damage",
    [
        b"not zstd at all",
        b"\x28\xb5\x2f\xfd" + b"\x00" * 20,  # a zstd magic number, then garbage
        "half",  # valid zstd, half a frame
        "truncated",
    ],
)
def test_damaged_chunk_is_a_decode_error_naming_the_frame(tmp_path: Path, frames: np.ndarray, damage: object) -> None:
    from numcodecs.zstd import Zstd

    path = tmp_path / "bt.db"
    uid = _write(path, frames)
    chunk = _chunk(path, uid, 2)
    if damage == "half":
        chunk.write_bytes(Zstd().encode(frames[2, :8].tobytes()))
    elif damage == "truncated":
        chunk.write_bytes(chunk.read_bytes()[:-7])
    else:
        assert isinstance(damage, bytes)
        chunk.write_bytes(damage)
    stack = _stack(path, uid)
    for key in (2, slice(None)):  # alone, and in a bulk read spread over threads
        with pytest.raises(FrameDecodeError) as info:
            stack[key]
        msg = str(info.value)
        for words in (path.with_suffix(".zarr"), f"frame 2 of array 'runs/{uid}/img'", "seq_num 3", "field img"):
            assert str(words) in msg
    np.testing.assert_array_equal(stack[3], frames[3])


def test_pickled_stack_reopens_direct_reader(tmp_path: Path, frames: np.ndarray, spy: list[int]) -> None:
    path = tmp_path / "bt.db"
    uid = _write(path, frames)
    stack = _stack(path, uid)
    stack[0]
    copy = pickle.loads(pickle.dumps(stack))
    np.testing.assert_array_equal(copy[:], frames)
    assert sorted(spy) == [0, *range(N)]


@pytest.mark.parametrize("nbytes", [0, 10, 255, 300, 65_791, 70_000, 5_000_000])
def test_zstd_header_size_matches_content(nbytes: int) -> None:
    from numcodecs.zstd import Zstd

    data = np.random.default_rng(nbytes).integers(0, 4, nbytes, dtype=np.uint8).tobytes()
    size = zstd_content_size(Zstd().encode(data))
    assert size == nbytes or (size is None and nbytes == 0)
    assert zstd_content_size(b"\x00" * 12) is None


def test_decode_threads_follow_config_and_dask(tmp_path: Path, frames: np.ndarray) -> None:
    with dask.config.set({"resonance.decode-threads": 3}):
        assert decode_threads() == 3
    with dask.config.set({"num_workers": 2}):
        assert decode_threads() == 2
    path = tmp_path / "bt.db"
    uid = _write(path, frames)
    with dask.config.set({"resonance.decode-threads": 1}):  # one thread: decoded in the caller's thread
        np.testing.assert_array_equal(_stack(path, uid)[:], frames)


def test_decode_threads_inside_a_distributed_worker() -> None:
    distributed = pytest.importorskip("distributed")
    for threads in (1, 2):
        with distributed.LocalCluster(
            n_workers=1, threads_per_worker=threads, processes=False, dashboard_address=":0"
        ) as cluster, distributed.Client(cluster) as client:
            assert client.submit(decode_threads, pure=False).result() == threads


def test_store_reads_only_what_zarr_asks(tmp_path: Path, frames: np.ndarray) -> None:
    path = tmp_path / "bt.db"
    uid = _write(path, frames)
    store = BeamtimeStore(path.with_suffix(".zarr"))
    assert ZstdFrames.for_array(zarr.open_array(store, path=f"runs/{uid}/img", mode="r"), store, f"runs/{uid}/img")
    assert store.read("nothing/zarr.json") is None


def _sharded(path: Path, uid: str, frames: np.ndarray, index_location: str = "end", write_empty: bool = False) -> Path:
    # write_empty_chunks=False: an all-fill inner chunk is left out of its shard (index entry empty)
    arr = zarr.create_array(
        str(path.with_suffix(".zarr")), name=f"runs/{uid}/img", shape=frames.shape, dtype="int32", overwrite=True,
        chunks=(1, 16, 12), shards={"shape": (3, 16, 12), "index_location": index_location},
        config={"write_empty_chunks": write_empty},
    )
    arr[:] = frames
    return path.with_suffix(".zarr") / "runs" / uid / "img" / "c" / "1" / "0" / "0"


def test_a_frame_absent_from_its_shard_is_an_error_not_zeros(tmp_path: Path, frames: np.ndarray) -> None:
    path = tmp_path / "bt.db"
    uid = _write(path, frames)
    assert not frames[4].any()  # the fill value: never written into shard 1
    _sharded(path, uid, frames)
    stack = _stack(path, uid)
    np.testing.assert_array_equal(stack[[0, 3, 5, 8]], frames[[0, 3, 5, 8]])
    for key in (4, slice(None), [3, 4, 5], slice(2, 7)):
        with pytest.raises(FramesMissingError) as info:
            stack[key]
        msg = str(info.value)
        for words in ("frame 4", "absent from its shard", f"run {uid}", "stream primary", "seq_num 5", "field img"):
            assert words in msg, (key, msg)
    with dask.config.set({"resonance.absent-chunks": "fill"}):  # read as Zarr does, when asked
        np.testing.assert_array_equal(stack[4], np.zeros((16, 12), np.int32))
    from intake_resonance import check

    found = [f for f in check(path, pixels=True) if "absent from its shard" in str(f)]
    assert len(found) == 1 and "seq_num 5" in str(found[0])


def test_a_shard_index_pointing_past_the_end_is_an_error(tmp_path: Path, frames: np.ndarray) -> None:
    path = tmp_path / "bt.db"
    uid = _write(path, frames)
    shard = _sharded(path, uid, frames, index_location="start", write_empty=True)
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) - 40])  # the last inner chunk (frame 5) now ends beyond the file
    stack = _stack(path, uid)
    np.testing.assert_array_equal(stack[3], frames[3])
    with pytest.raises(FrameDecodeError) as info:
        stack[:]
    msg = str(info.value)
    assert "seq_num 6" in msg and "file ends at" in msg and f"run {uid}" in msg
