"""``intake-resonance serve`` as a real process on 127.0.0.1, for the tests that need a socket."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(
    db: Path, log: list[str], *, args: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``intake-resonance serve db [args]`` on an ephemeral port; yields its URL and process.

    Waits until tiled's about document (the one route open without a key)
    answers. On leaving, the server is stopped, its stderr appended to
    ``log`` and its exit code left in ``proc.returncode``.
    """
    port = free_port()
    exe = Path(sys.executable).with_name("intake-resonance")
    proc = subprocess.Popen([str(exe), "serve", str(db), "--port", str(port), *args], env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                httpx.get(f"{url}/api/v1/", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr:
            log.append(proc.stderr.read())
            proc.stderr.close()
