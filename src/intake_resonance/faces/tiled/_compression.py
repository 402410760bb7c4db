"""The encodings our server offers: gzip for documents, array bytes as they are.

tiled's default registry wraps ``gzip.GzipFile`` around a buffer that its
middleware may close first; on Python 3.13 every such response then prints
"Exception ignored in: <gzip ...>" with a traceback on the server's stderr.
Our gzip writer compresses into the buffer it is given and owns nothing that
a garbage collector could finish later. Array bytes (frames) go uncompressed:
detector frames barely compress, and on the links a beamtime is served over
compressing 4 MiB per frame costs more time than it saves.
"""

from __future__ import annotations

import zlib
from typing import Any

#: Documents worth compressing (tiled's metadata and search answers).
_DOCUMENTS = ("application/json", "application/x-msgpack", "text/csv", "text/plain", "text/html")


class _GzipWriter:
    """What tiled's compression middleware calls: ``write(bytes)`` then ``close()``."""

    def __init__(self, buffer: Any, level: int) -> None:
        self._buffer = buffer
        self._zlib: Any = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # 16+: a gzip header and trailer

    def write(self, data: bytes) -> int:
        self._buffer.write(self._zlib.compress(data))
        return len(data)

    def close(self) -> None:
        if self._zlib is not None:
            self._buffer.write(self._zlib.flush())
            self._zlib = None


def compression_registry() -> Any:
    """A tiled ``CompressionRegistry`` offering gzip for documents and nothing for array bytes."""
    from tiled.media_type_registration import CompressionRegistry

    registry = CompressionRegistry()
    for media_type in _DOCUMENTS:
        registry.register(media_type, "gzip", lambda buffer: _GzipWriter(buffer, 6))
    return registry
