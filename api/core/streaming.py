"""Server-sent events for /v1 streams: frames, error frames, [DONE], and shutdown handling.

Order (style rule 5): the handler opens the upstream first, so its failure is still a real
4xx/5xx; only then is the SSE response prepared. After that, any failure becomes an error frame
`data: {"error": {...}}` (the openai SDK raises APIError on it) and the stream is closed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from api.core.upstream import UpstreamStream
from api.core.wire import encode_json

log = logging.getLogger(__name__)

SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8",
               "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


DONE = b"data: [DONE]\n\n"


def frame(obj: Mapping[str, Any]) -> bytes:
    """One SSE `data:` frame."""
    return b"data: " + encode_json(obj).encode() + b"\n\n"


def error_payload(message: str, code: str, type: str = "server_error") -> dict[str, Any]:
    """The body of an SSE error frame."""
    return {"error": {"message": message, "type": type, "param": None, "code": code}}


class SSEStream:
    """One SSE response being written, with the upstream stream(s) feeding it."""

    def __init__(self, request: web.Request, headers: Mapping[str, str]) -> None:
        self.request = request
        self.response = web.StreamResponse(status=200, headers={**SSE_HEADERS, **headers})
        self.upstreams: list[UpstreamStream] = []
        self.shutting_down = False
        self.frames = 0

    async def open(self) -> None:
        """Send the status and headers."""
        await self.response.prepare(self.request)

    async def send(self, obj: Mapping[str, Any]) -> None:
        """Write one `data:` frame (raises ConnectionError when the client has gone)."""
        await self.send_frames([frame(obj)])

    async def send_frames(self, frames: list[bytes]) -> None:
        """Write several encoded frames at once (one syscall)."""
        if frames:
            await self.response.write(b"".join(frames))
            self.frames += len(frames)

    async def send_error(self, message: str, code: str, type: str = "server_error",
                         before: list[bytes] | None = None) -> None:
        """Write an error frame (after any pending frames) and end the body (no [DONE])."""
        frames = [*(before or []), frame(error_payload(message, code, type))]
        self.frames += len(frames)
        await self.response.write_eof(b"".join(frames))

    async def done(self, before: list[bytes] | None = None) -> None:
        """Write pending frames and `data: [DONE]`, and end the body, in one write."""
        frames = [*(before or []), DONE]
        self.frames += len(frames)
        await self.response.write_eof(b"".join(frames))

    def abort_upstreams(self) -> None:
        """Close every upstream at once (client gone or server shutting down)."""
        for upstream in self.upstreams:
            upstream.close()


class OpenStreams:
    """The SSE streams in flight, so shutdown can end each with an error frame."""

    def __init__(self) -> None:
        self.streams: set[SSEStream] = set()
        self.closing = False

    def add(self, stream: SSEStream) -> None:
        """Track a stream (it is ended at once if the server is already shutting down)."""
        self.streams.add(stream)
        if self.closing:
            stream.shutting_down = True
            stream.abort_upstreams()

    def discard(self, stream: SSEStream) -> None:
        """Stop tracking a finished stream."""
        self.streams.discard(stream)

    async def on_shutdown(self, app: web.Application) -> None:
        """Close the upstreams of open streams; their handlers then send an error frame."""
        self.closing = True
        if self.streams:
            log.info("shutting down: ending %d open stream(s)", len(self.streams))
        for stream in list(self.streams):
            stream.shutting_down = True
            stream.abort_upstreams()
