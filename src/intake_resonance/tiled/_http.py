"""HTTP errors for tiled: our one-line messages as the detail of a 4xx answer.

tiled's client shows the detail of a 4xx answer and retries a 5xx one
(dropping its detail), so a broken file is a 422 and a missing one a 404.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import HTTPException

from ..errors import BeamtimeError, BeamtimeNotFoundError, RunNotFoundError

__all__ = ["bad_request", "http_error", "one_line", "served"]

NOT_FOUND = 404
BROKEN = 422  # the request is fine, the file or row it names is not


def one_line(exc: BaseException) -> str:
    """The exception's message on one line."""
    return " ".join(str(exc).split())


def http_error(exc: BeamtimeError) -> HTTPException:
    """404 for what does not exist, 422 for a broken file or row; detail: our message."""
    status = NOT_FOUND if isinstance(exc, (RunNotFoundError, BeamtimeNotFoundError)) else BROKEN
    return HTTPException(status_code=status, detail=one_line(exc))


@contextmanager
def served() -> Iterator[None]:
    """Turn our errors raised inside the block into HTTP errors."""
    try:
        yield
    except BeamtimeError as exc:
        raise http_error(exc) from exc


def bad_request(message: str) -> HTTPException:
    """A 400 answer with ``message``."""
    return HTTPException(status_code=400, detail=message)
