"""Decompression bombs as chunk files: refused before they are decoded, in bounded time and memory.

A chunk of a frame array may decode to one chunk's bytes and no more
(:mod:`intake_resonance.beamtime.bounds`). The zstd bomb (1 GiB of zeros in
a 32 KB stream that declares no size) is read through every face in a child
process whose peak memory is checked; the gzip and blosc cases check the
refusal and its words.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from hostile import image_array, small_beamtime

from intake_resonance.beamtime.errors import FrameDecodeError

TESTS = Path(__file__).resolve().parent
_READ = """
import json, resource, sys
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from hostile import FACES
from intake_resonance.beamtime.errors import BeamtimeError

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

for face, read in FACES.items():  # the same reads of an intact beamtime first: every library loaded, caches warm
    read(Path(sys.argv[3]), sys.argv[2])
out = {"baseline_mib": peak()}
for face, read in FACES.items():
    try:
        read(Path(sys.argv[1]), sys.argv[2])
        out[face] = "read"
    except BeamtimeError as exc:
        out[face] = f"{type(exc).__name__}: {exc}"
out["peak_mib"] = peak()
print(json.dumps(out))
"""


def _zstd_bomb(size: int = 2**30) -> bytes:
    zstandard = pytest.importorskip("zstandard")
    compressor = zstandard.ZstdCompressor(level=3, write_content_size=False).compressobj()
    zeros = bytes(64 * 2**20)
    parts = [compressor.compress(zeros) for _ in range(size // len(zeros))]
    return b"".join(parts) + compressor.flush()


@pytest.mark.skipif(sys.platform == "win32", reason="resource is POSIX")
def test_a_zstd_bomb_is_refused_without_decoding_it(tmp_path: Path) -> None:
    (tmp_path / "intact").mkdir()
    intact = small_beamtime(tmp_path / "intact")
    bt = small_beamtime(tmp_path)
    bomb = _zstd_bomb()
    assert len(bomb) < 64 * 1024  # small on disk: only its decoded size gives it away
    (image_array(bt) / "c" / "2" / "0" / "0").write_bytes(bomb)
    done = subprocess.run(
        [sys.executable, "-c", _READ, str(bt.path), bt.uids["rsoxs"], str(intact.path), str(TESTS)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.splitlines()[-1])
    for face in ("facade", "intake", "engine"):
        assert out[face].startswith("FrameDecodeError") and "declares no content size" in out[face], out[face]
        assert "seq_num 3" in out[face] and "does not decode" in out[face]
    # a decoded bomb alone would add 1024 MiB to what reading an intact copy took
    assert out["peak_mib"] - out["baseline_mib"] < 256, (out["baseline_mib"], out["peak_mib"])


def _zarr2(bt_path: Path, uid: str, frames: np.ndarray, compressor: object) -> Path:
    arr = zarr.create_array(
        str(bt_path.with_suffix(".zarr")), name=f"runs/{uid}/detector_image", shape=frames.shape, dtype=frames.dtype,
        chunks=(1, *frames.shape[1:]), zarr_format=2, compressors=compressor, overwrite=True,
        config={"write_empty_chunks": True},
    )
    arr[:] = frames
    return bt_path.with_suffix(".zarr") / "runs" / uid / "detector_image"


def _refusal(db: Path, uid: str) -> str:
    """The FrameDecodeError reading a run's frames must raise, as text."""
    from intake_resonance import open_run_dataset

    with pytest.raises(FrameDecodeError) as info:
        open_run_dataset(db, uid).detector_image.values
    return str(info.value)


def test_a_gzip_bomb_is_inflated_no_further_than_a_chunk(tmp_path: Path) -> None:
    from numcodecs import GZip

    from intake_resonance import open_run_dataset

    bt = small_beamtime(tmp_path)
    uid = bt.uids["rsoxs"]
    folder = _zarr2(bt.path, uid, bt.frames["rsoxs"], GZip(level=1))
    np.testing.assert_array_equal(open_run_dataset(bt.path, uid).detector_image.values, bt.frames["rsoxs"])
    bomb = gzip.compress(bytes(60 * 2**20), compresslevel=9)
    assert len(bomb) < 64 * 1024
    (folder / "2.0.0").write_bytes(bomb)
    message = _refusal(bt.path, uid)
    assert "inflates to more than" in message and "seq_num 3" in message


def test_a_blosc_header_declaring_too_much_is_refused(tmp_path: Path) -> None:
    from numcodecs import Blosc


    bt = small_beamtime(tmp_path)
    uid = bt.uids["rsoxs"]
    folder = _zarr2(bt.path, uid, bt.frames["rsoxs"], Blosc())
    chunk = folder / "1.0.0"
    raw = bytearray(chunk.read_bytes())
    raw[4:8] = (2**31).to_bytes(4, "little")  # "2 GiB decoded"
    chunk.write_bytes(bytes(raw))
    message = _refusal(bt.path, uid)
    assert "declares 2147483648 bytes decoded" in message and "seq_num 2" in message


def test_a_chunk_file_far_larger_than_a_frame_is_not_read(tmp_path: Path) -> None:
    bt = small_beamtime(tmp_path)
    uid = bt.uids["rsoxs"]
    (image_array(bt) / "c" / "0" / "0" / "0").write_bytes(b"\x28\xb5\x2f\xfd" + bytes(200_000))
    message = _refusal(bt.path, uid)
    assert "larger than" in message and "refused before reading" in message
