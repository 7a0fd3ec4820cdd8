"""A request body read as a text file by synchronous code in a thread, chunk by chunk as
it arrives: a batch upload of any size is never held in memory whole.

The thread pulls each chunk from the event loop when it needs it, so a slow reader
slows the client down (back pressure) rather than buffering. A line longer than
``max_line`` bytes is refused before it is held whole: without a line end, a reader
of lines would otherwise keep reading into memory.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import IO

from producer.batches import BatchInputError


class _BodyReader(io.RawIOBase):
    def __init__(
        self, chunks: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop, max_line: int
    ) -> None:
        self._chunks = chunks
        self._loop = loop
        self._max_line = max_line
        self._buffer = b""
        self._since_line_end = 0
        self._ended = False
        self.received = 0

    def readable(self) -> bool:
        return True

    async def _next(self) -> bytes:
        return await self._chunks.__anext__()

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer and not self._ended:
            try:
                chunk = asyncio.run_coroutine_threadsafe(self._next(), self._loop).result()
            except StopAsyncIteration:
                self._ended = True
                break
            self._count(chunk)
            self._buffer = chunk
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size

    def _count(self, chunk: bytes) -> None:
        self.received += len(chunk)
        end = chunk.rfind(b"\n")
        self._since_line_end = (
            len(chunk) - end - 1 if end >= 0 else self._since_line_end + len(chunk)
        )
        if self._since_line_end > self._max_line:
            raise BatchInputError(
                f"a line of the upload is longer than {self._max_line:,} bytes "
                "(more than a record may be, MLQ_MAX_RECORD_BYTES)"
            )


def text_stream(
    chunks: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop, *, max_line: int
) -> IO[str]:
    """The body as text (UTF-8, undecodable bytes replaced), for a thread to read."""
    raw = _BodyReader(chunks, loop, max_line)
    return io.TextIOWrapper(
        io.BufferedReader(raw, 1 << 16), encoding="utf-8", errors="replace", newline=""
    )
