"""The one stream service: every streamed answer of every protocol goes through `relay`.

Order (style rule 5): the handler opens the upstream first, so its failure is still a real
4xx/5xx in the surface's shape; only then does `relay` prepare the response. After that:
- the surface's `Frames` turn each batch of native lines into bytes, written in one write;
- when the answer is complete, its end frames (usage, `[DONE]`, `message_stop`, ...) go out
  with the last content in the same write, and the body ends;
- a mid-stream upstream failure (an error line, a dropped connection, no done line) becomes
  the surface's error frame, never a silent end;
- a client that disconnects closes the upstream at once, so Ollama stops generating;
- at shutdown every open stream's upstream is closed and it ends with a shutdown error frame;
- a surface may ask for a keep-alive frame (Anthropic's `ping`) while the model is silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web

from api.core.pipeline import Call
from api.core.relay import StreamFailed, merged
from api.core.upstream import UpstreamStream

log = logging.getLogger(__name__)

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
SHUTDOWN = StreamFailed("The gateway is shutting down; this stream was ended.", "server_shutdown")


class Frames(Protocol):
    """What a protocol supplies to stream one answer in its own wire format."""

    @property
    def headers(self) -> Mapping[str, str]:
        """The content type and friends."""
        ...

    finished: bool  # every choice is complete: the end frames may go out
    cut: bool  # finished before Ollama did (a stop sequence): close instead of draining
    ping_interval: float | None  # seconds of silence before `ping()`; None: never

    def start(self) -> bytes:
        """Frames sent right after the headers (may be empty)."""
        ...

    def feed(self, index: int, lines: list[dict[str, Any]]) -> bytes:
        """Frames for a batch of native lines of upstream `index`."""
        ...

    def finish(self) -> bytes:
        """The end frames; the adapter records usage on its call here."""
        ...

    def fail(self, failure: StreamFailed) -> bytes:
        """The error frames after a mid-stream failure; usage so far is recorded here."""
        ...

    def ping(self) -> bytes:
        """A keep-alive frame."""
        ...


class OpenStream:
    """One streamed response being written, with the upstream stream(s) feeding it."""

    def __init__(
        self, request: web.Request, headers: Mapping[str, str], upstreams: list[UpstreamStream]
    ) -> None:
        self.request = request
        self.response = web.StreamResponse(status=200, headers=headers)
        self.upstreams = upstreams
        self.shutting_down = False
        self.last_write = time.monotonic()

    async def write(self, data: bytes) -> None:
        """Write bytes (raises ConnectionError when the client has gone)."""
        if data:
            self.last_write = time.monotonic()
            await self.response.write(data)

    def abort_upstreams(self) -> None:
        """Close every upstream at once (client gone, answer cut, or server shutting down)."""
        for upstream in self.upstreams:
            upstream.close()


class StreamService:
    """Relays upstream streams to clients, and tracks them so shutdown can end each."""

    def __init__(self) -> None:
        self.streams: set[OpenStream] = set()
        self.closing = False

    async def relay(
        self, request: web.Request, call: Call, upstreams: list[UpstreamStream], frames: Frames
    ) -> web.StreamResponse:
        """Stream one answer to the client in `frames`' format; always closes the upstreams."""
        stream = OpenStream(request, {**frames.headers, **call.headers}, upstreams)
        self.streams.add(stream)
        if self.closing:
            stream.shutting_down = True
            stream.abort_upstreams()
        pinger: asyncio.Task[None] | None = None
        try:
            await stream.response.prepare(request)
            await stream.write(frames.start())
            if frames.ping_interval:
                pinger = asyncio.ensure_future(_keep_alive(stream, frames, frames.ping_interval))
            try:
                await self._pump(stream, call, frames)
            except StreamFailed as exc:
                failure = SHUTDOWN if stream.shutting_down else exc
                call.record.error_code = failure.code
                await _stop(pinger)
                pinger = None
                await stream.response.write_eof(frames.fail(failure))
        except ConnectionError:
            # The client went away: close the upstream now so Ollama stops generating.
            call.record.cancelled = True
            call.record.status = 499
            call.record.error_code = "client_closed"
        finally:
            await _stop(pinger)
            stream.abort_upstreams()
            self.streams.discard(stream)
        return stream.response

    @staticmethod
    async def _pump(stream: OpenStream, call: Call, frames: Frames) -> None:
        """Write each batch as it arrives; end the body with the end frames once complete."""
        ended = False
        async for index, batch in merged(stream.upstreams):
            if ended:
                continue  # drain to EOF, so the connection goes back to the pool
            data = frames.feed(index, batch)
            if data:
                call.first_token()
            if frames.finished:
                # The last choice finished: its frames and the end frames in one write.
                await stream.response.write_eof(data + frames.finish())
                ended = True
                if frames.cut:
                    return  # relay closes the upstream, so Ollama stops generating
            else:
                await stream.write(data)

    async def on_shutdown(self, app: web.Application) -> None:
        """Close the upstreams of open streams; each then ends with a shutdown error frame."""
        self.closing = True
        if self.streams:
            log.info("shutting down: ending %d open stream(s)", len(self.streams))
        for stream in list(self.streams):
            stream.shutting_down = True
            stream.abort_upstreams()


async def _keep_alive(stream: OpenStream, frames: Frames, interval: float) -> None:
    """Write a keep-alive frame whenever nothing was written for `interval` seconds."""
    while True:
        wait = stream.last_write + interval - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
            continue
        try:
            await stream.write(frames.ping())
        except (ConnectionError, RuntimeError):
            return  # the client left or the body ended: the relay loop handles both


async def _stop(task: asyncio.Task[None] | None) -> None:
    """Cancel the keep-alive task and wait for it."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
