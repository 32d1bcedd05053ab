"""OpenAI's server-sent events for chat and completions: `data:` frames, errors, [DONE]."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api.core.relay import StreamFailed
from api.core.streaming import SSE_HEADERS
from api.core.wire import encode_json

DONE = b"data: [DONE]\n\n"


def frame(obj: Mapping[str, Any]) -> bytes:
    """One SSE `data:` frame."""
    return b"data: " + encode_json(obj).encode() + b"\n\n"


def error_frame(failure: StreamFailed) -> bytes:
    """The frame that ends a failed stream (the openai SDK raises APIError on it)."""
    return frame(
        {
            "error": {
                "message": failure.message,
                "type": "server_error",
                "param": None,
                "code": failure.code,
            }
        }
    )


class OpenAIFrames:
    """The parts of a chat or completions stream that do not depend on the endpoint."""

    headers = SSE_HEADERS
    ping_interval: float | None = None
    cut = False

    def __init__(self) -> None:
        self.finished = False

    def start(self) -> bytes:
        """Nothing precedes the first chunk."""
        return b""

    def ping(self) -> bytes:
        """Not used: OpenAI streams have no keep-alive frame."""
        return b""
