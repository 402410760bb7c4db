"""A link swapped between the store's boundary check and the open cannot reach outside the store."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import T0, write_rsoxs

from intake_resonance.beamtime import store as store_module
from intake_resonance.beamtime.errors import StoreEscapeError
from intake_resonance.beamtime.store import BeamtimeStore
from intake_resonance.datasets.open import open_run_dataset
from intake_resonance.tools.writer import BeamtimeWriter

SECRET = b"outside the store: never to be read"


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "bt.db"
    with BeamtimeWriter(path, seed=6) as w:
        uid, _, frames = write_rsoxs(w, T0)
    outside = tmp_path / "outside"
    (outside / "0" / "0").mkdir(parents=True)
    (outside / "0" / "0" / "0").write_bytes(SECRET)
    (outside / "chunk").write_bytes(SECRET)
    array = path.with_suffix(".zarr") / "runs" / uid / "detector_image"
    # a link inside the store that stays inside it (allowed), for chunk 1
    chunk = array / "c" / "1" / "0" / "0"
    shutil.move(chunk, array / "kept")
    chunk.symlink_to(Path("..") / ".." / ".." / "kept")
    return {"path": path, "uid": uid, "frames": frames, "array": array, "outside": outside,
            "key": f"runs/{uid}/detector_image/c/1/0/0"}


def _swap_after_check(monkeypatch: pytest.MonkeyPatch, when: str, swap: Callable[[], None]) -> list[str]:
    """Run ``swap`` right after the boundary check resolves a path ending in ``when``."""
    done: list[str] = []
    real_realpath = os.path.realpath

    def realpath(p: Any, *args: Any, **kwargs: Any) -> str:
        out = real_realpath(p, *args, **kwargs)
        if not done and str(p).endswith(when):
            swap()
            done.append(str(p))
        return out

    monkeypatch.setattr(store_module.os.path, "realpath", realpath)
    return done


def test_swapped_chunk_link_is_not_followed(layout: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    store = BeamtimeStore(layout["path"].with_suffix(".zarr"))
    assert store.read(layout["key"]) == (layout["array"] / "kept").read_bytes()  # the inside link reads
    chunk = layout["array"] / "c" / "1" / "0" / "0"

    def swap() -> None:
        chunk.unlink()
        chunk.symlink_to(layout["outside"] / "chunk")

    done = _swap_after_check(monkeypatch, "c/1/0/0", swap)
    got = store.read(layout["key"])
    assert done and os.readlink(chunk) == str(layout["outside"] / "chunk")  # swapped after the check
    assert got == (layout["array"] / "kept").read_bytes() != SECRET  # the file checked is the file read
    with pytest.raises(StoreEscapeError):  # and the next read's check sees the new link
        store.read(layout["key"])


def test_swapped_folder_is_refused(layout: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    store = BeamtimeStore(layout["path"].with_suffix(".zarr"))
    key = f"runs/{layout['uid']}/detector_image/c/2/0/0"
    folder = layout["array"] / "c" / "2"

    def swap() -> None:  # a whole folder of the store becomes a link out of it
        shutil.rmtree(folder)
        folder.symlink_to(layout["outside"], target_is_directory=True)

    done = _swap_after_check(monkeypatch, "c/2/0/0", swap)
    with pytest.raises(StoreEscapeError) as info:
        store.read(key)
    assert done and "changed while it was opened" in str(info.value)


def test_swapped_link_through_a_dataset(layout: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    ds = open_run_dataset(str(layout["path"]), layout["uid"], chunks=1)
    np.testing.assert_array_equal(ds.detector_image.values, layout["frames"])  # links inside the store read
    chunk = layout["array"] / "c" / "1" / "0" / "0"

    def swap() -> None:
        chunk.unlink()
        chunk.symlink_to(layout["outside"] / "chunk")

    folder = layout["array"] / "c" / "3"

    def swap_folder() -> None:
        swap()
        shutil.rmtree(folder)
        folder.symlink_to(layout["outside"], target_is_directory=True)

    _swap_after_check(monkeypatch, "c/3/0/0", swap_folder)
    with pytest.raises(StoreEscapeError) as info:
        open_run_dataset(str(layout["path"]), layout["uid"], chunks=1).detector_image.values
    assert f"run {layout['uid']}" in str(info.value) and "seq_num" in str(info.value)
