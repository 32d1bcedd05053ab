"""Reading native NDJSON streams: one or several (n > 1) merged, errors made explicit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from api.core.errors import APIError
from api.core.upstream import UpstreamBroken, UpstreamStream


class StreamFailed(Exception):
    """A native stream failed after it started: an error line, a drop, or no done line."""

    def __init__(self, message: str, code: str = "upstream_error") -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def api_error(self) -> APIError:
        """This failure as a 502 (for answers not yet started)."""
        return APIError(502, self.message, code=self.code, type="server_error")


async def batches_of(stream: UpstreamStream) -> AsyncIterator[list[dict[str, Any]]]:
    """Batches of lines of one native stream up to its done line; failures raise StreamFailed."""
    done = False
    try:
        async for batch in stream.batches():
            if done:
                continue  # drain to EOF so the connection goes back to the pool
            out: list[dict[str, Any]] = []
            for line in batch:
                if "error" in line:
                    if out:
                        yield out
                    raise StreamFailed(f"Ollama error: {line['error']}")
                out.append(line)
                if line.get("done"):
                    done = True
                    break
            yield out
    except UpstreamBroken as exc:
        if done:
            return  # the answer was complete; only the drain after it failed
        raise StreamFailed(str(exc)) from None
    if not done:
        raise StreamFailed(
            f"Ollama at {stream.url} closed the stream before it finished (no done line)."
        )


async def merged(
    streams: Sequence[UpstreamStream],
) -> AsyncIterator[tuple[int, list[dict[str, Any]]]]:
    """(index, batch of lines) from several streams as they arrive; a failure raises."""
    if len(streams) == 1:  # the common case stays a plain loop: no tasks, no queue
        async for batch in batches_of(streams[0]):
            yield 0, batch
        return
    queue: asyncio.Queue[tuple[int, list[dict[str, Any]] | BaseException | None]] = asyncio.Queue()

    async def pump(i: int, stream: UpstreamStream) -> None:
        try:
            async for batch in batches_of(stream):
                await queue.put((i, batch))
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


async def collect(stream: UpstreamStream) -> list[dict[str, Any]]:
    """Every line of one native stream up to its done line (closed after); failures raise."""
    lines: list[dict[str, Any]] = []
    try:
        async for batch in batches_of(stream):
            lines.extend(batch)
    finally:
        stream.close()
    return lines
