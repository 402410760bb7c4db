"""ByteBoundedCache: least recently used values dropped once their sizes pass the budget."""

from __future__ import annotations

import threading

from intake_resonance.beamtime.cache import ByteBoundedCache, size_of_strings


def test_bounded_by_bytes_not_entries() -> None:
    cache: ByteBoundedCache[str, bytes] = ByteBoundedCache(100, len)
    for key in "abcd":
        cache.put(key, b"x" * 30)
    assert len(cache) == 3 and cache.nbytes == 90 and cache.get("a") is None  # a, the oldest, went
    assert cache.get("b") == b"x" * 30  # b is now the most recently used
    cache.put("e", b"y" * 60)
    assert cache.get("c") is None and cache.get("d") is None and cache.get("b") is not None and cache.nbytes == 90
    cache.put("huge", b"z" * 101)  # larger than the whole budget: not kept, nothing else dropped for it
    assert cache.get("huge") is None and cache.nbytes == 90
    cache.put("b", b"")  # a new value for a key replaces its size
    assert cache.nbytes == 60 and cache.get("b") == b""
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0


def test_many_distinct_searches_stay_within_the_budget() -> None:
    """As a server asked for 64 distinct searches of 300 000 runs: held bytes never pass the budget."""
    uids = [f"{i:032x}" for i in range(300_000)]
    cache: ByteBoundedCache[int, list[str]] = ByteBoundedCache(64 * 2**20, size_of_strings)
    one = size_of_strings(uids)
    assert one > 20 * 2**20  # each answer is tens of MB
    for search in range(64):
        cache.put(search, uids)
        assert cache.nbytes <= 64 * 2**20
    assert len(cache) == (64 * 2**20) // one


def test_threads_share_it_safely() -> None:
    cache: ByteBoundedCache[int, bytes] = ByteBoundedCache(1000, len)

    def work(base: int) -> None:
        for i in range(2000):
            cache.put(base + i % 50, b"." * 10)
            cache.get(base + (i * 7) % 50)

    threads = [threading.Thread(target=work, args=(k * 100,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert cache.nbytes == 10 * len(cache) <= 1000


def test_an_entry_bound_too_when_asked() -> None:
    cache: ByteBoundedCache[int, bytes] = ByteBoundedCache(1000, len, max_items=2)
    for k in range(4):
        cache.put(k, b"x" * 10)
    assert len(cache) == 2 and cache.get(0) is None and cache.get(3) == b"x" * 10 and cache.nbytes == 20


def test_served_stream_nodes_are_counted_in_bytes(tmp_path) -> None:
    import pytest

    pytest.importorskip("tiled")
    from conftest import T0

    from intake_resonance.faces.tiled.served import Beamtime
    from intake_resonance.tools.writer import BeamtimeWriter

    path = tmp_path / "bt.db"
    with BeamtimeWriter(path) as w:
        uid = w.open_run("scan", time=T0)
        w.open_stream("primary", {}, time=T0)
        for i in range(100):
            w.write_event({"e": float(i), "note": "y" * 1000}, time=T0 + i)
        w.close_run("success", time=T0 + 200)
    served = Beamtime(path, ttl=1.0, cache_size=8)
    node = served.stream_node(uid, "primary")
    assert 100 * 1000 <= node.memory < 200_000  # the text at its own length, the numbers, time and seq_num
    assert served.stream_node(uid, "primary") is node  # kept
