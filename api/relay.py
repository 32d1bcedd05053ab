"""Reading native NDJSON streams: one or several (n > 1) merged, errors made explicit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from api.errors import APIError
from api.upstream import UpstreamBroken, UpstreamStream


class StreamFailed(Exception):
    """A native stream failed after it started: an error line, a drop, or no done line."""

    def __init__(self, message: str, code: str = "upstream_error") -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def api_error(self) -> APIError:
        """This failure as a 502 (for answers not yet started)."""
        return APIError(502, self.message, code=self.code, type="server_error")


async def lines_of(stream: UpstreamStream) -> AsyncIterator[dict[str, Any]]:
    """The lines of one native stream up to its done line; failures raise StreamFailed."""
    done = False
    try:
        async for line in stream:
            if "error" in line:
                raise StreamFailed(f"Ollama error: {line['error']}")
            if done:
                continue
            yield line
            done = bool(line.get("done"))
    except UpstreamBroken as exc:
        raise StreamFailed(str(exc)) from None
    if not done:
        raise StreamFailed(f"Ollama at {stream.url} closed the stream before it finished "
                           "(no done line).")


async def merged(streams: Sequence[UpstreamStream]) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """(index, line) from several streams as the lines arrive; the first failure raises."""
    if len(streams) == 1:  # the common case stays a plain loop: no tasks, no queue
        async for line in lines_of(streams[0]):
            yield 0, line
        return
    queue: asyncio.Queue[tuple[int, dict[str, Any] | BaseException | None]] = asyncio.Queue()

    async def pump(i: int, stream: UpstreamStream) -> None:
        try:
            async for line in lines_of(stream):
                await queue.put((i, line))
        except Exception as exc:
            await queue.put((i, exc))
        else:
            await queue.put((i, None))

    tasks = [asyncio.ensure_future(pump(i, s)) for i, s in enumerate(streams)]
    try:
        remaining = len(tasks)
        while remaining:
            i, item = await queue.get()
            if item is None:
                remaining -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield i, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
