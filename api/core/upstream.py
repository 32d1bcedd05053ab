"""The Ollama client: one long-lived ClientSession, NDJSON streams, errors mapped to APIError."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from api.core.errors import APIError
from logs import shown_url

log = logging.getLogger(__name__)

# A native line can carry logprobs or a long tool call; the default 64 KiB limit is too small.
READ_BUFSIZE = 16 * 1024 * 1024


class UpstreamStream:
    """An open NDJSON response from Ollama; iterate for parsed lines, always close."""

    def __init__(self, response: aiohttp.ClientResponse, url: str) -> None:
        self.response = response
        self.url = url

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        async for batch in self.batches():
            for line in batch:
                yield line

    async def batches(self) -> AsyncIterator[list[dict[str, Any]]]:
        """Parsed lines in batches of what has already arrived (never waits for more).

        Translating every line already received before writing once saves a syscall per
        line without delaying any of them.
        """
        content = self.response.content
        parts: list[bytes] = []  # an unfinished line, kept in pieces (no quadratic joins)
        size = 0
        while True:
            try:
                chunk = await content.readany()
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                raise UpstreamBroken(
                    f"Connection to Ollama at {self.url} failed mid-stream: {_reason(exc)}"
                ) from exc
            if not chunk:
                rest = b"".join(parts)
                if rest.strip():
                    yield [_parse(rest)]
                return
            if b"\n" not in chunk:
                parts.append(chunk)
                size += len(chunk)
                if size > READ_BUFSIZE:
                    raise UpstreamBroken(f"Ollama sent a line longer than {READ_BUFSIZE} bytes.")
                continue
            lines = (b"".join(parts) + chunk if parts else chunk).split(b"\n")
            rest = lines.pop()
            parts, size = ([rest], len(rest)) if rest else ([], 0)
            batch = [_parse(line) for line in lines if line.strip()]
            if batch:
                yield batch

    def close(self) -> None:
        """Close the connection at once (Ollama then stops generating)."""
        self.response.close()


class UpstreamBroken(Exception):
    """The upstream stream broke after it started (dropped connection, garbage)."""


# Ollama's lines are UTF-8; decoding them directly skips json.loads' encoding detection,
# about half the cost of parsing a short token line.
_decode_json = json.JSONDecoder().decode


def _parse(line: bytes) -> dict[str, Any]:
    """One NDJSON line as an object, or UpstreamBroken."""
    try:
        obj = _decode_json(line.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UpstreamBroken(f"Ollama sent a line that is not JSON: {line[:200]!r}") from exc
    if not isinstance(obj, dict):
        raise UpstreamBroken(f"Ollama sent a line that is not an object: {line[:200]!r}")
    return obj


def _reason(exc: BaseException) -> str:
    """A short human reason for a client exception."""
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    text = str(exc)
    return text or type(exc).__name__


class OllamaClient:
    """Talks to one Ollama server over a single long-lived ClientSession."""

    def __init__(
        self, base_url: str, *, connect_timeout: float = 5.0, read_timeout: float = 600.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.shown_url = shown_url(self.base_url)
        self.version: str | None = None  # the server's, once the catalog has asked
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the session (call once at startup)."""
        if self._session is None:
            # total=None: streams and first model loads legitimately run for minutes; the read
            # timeout bounds silence between bytes instead.
            timeout = aiohttp.ClientTimeout(
                total=None, connect=self.connect_timeout, sock_read=self.read_timeout
            )
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                timeout=timeout,
                connector=connector,
                read_bufsize=READ_BUFSIZE,
                max_line_size=READ_BUFSIZE,
                max_field_size=READ_BUFSIZE,
            )

    async def close(self) -> None:
        """Close the session (call once at shutdown)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The shared session; only valid between start() and close()."""
        if self._session is None:
            raise RuntimeError("OllamaClient used before start()")
        return self._session

    def set_base_url(self, base_url: str) -> None:
        """Point at another Ollama server (the admin changed the URL)."""
        self.base_url = base_url.rstrip("/")
        self.shown_url = shown_url(self.base_url)
        self.version = None  # a different server: ask its version again

    async def open_stream(self, path: str, body: dict[str, Any]) -> UpstreamStream:
        """POST and return the open NDJSON stream; a non-200 status raises APIError."""
        url = self.base_url + path
        try:
            response = await self.session.post(url, json=body)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise unreachable(self.shown_url, exc) from exc
        if response.status != 200:
            try:
                raw = await response.read()
            except (TimeoutError, aiohttp.ClientError):
                raw = b""
            finally:
                response.release()
            raise upstream_status_error(response.status, raw, response.headers, body.get("model"))
        return UpstreamStream(response, self.shown_url)

    async def request_json(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        total: float | None = None,
    ) -> dict[str, Any]:
        """Send one request and return the JSON object; errors raise APIError."""
        url = self.base_url + path
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["json"] = body
        if total is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=total)
        try:
            async with self.session.request(method, url, **kwargs) as response:
                raw = await response.read()
                if response.status != 200:
                    model = body.get("model") if body else None
                    raise upstream_status_error(response.status, raw, response.headers, model)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise unreachable(self.shown_url, exc) from exc
        try:
            data = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            raise APIError(
                502,
                f"Ollama at {self.shown_url} answered {path} with invalid JSON.",
                code="upstream_error",
            ) from exc
        if not isinstance(data, dict):
            raise APIError(
                502,
                f"Ollama at {self.shown_url} answered {path} with a non-object.",
                code="upstream_error",
            )
        return data


def unreachable(base_url: str, exc: BaseException) -> APIError:
    """The 502 for an Ollama that cannot be reached; the message names the URL."""
    if isinstance(exc, asyncio.TimeoutError):
        return APIError(
            504,
            f"Ollama at {base_url} did not answer in time.",
            code="upstream_timeout",
            type="server_error",
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return APIError(
            502,
            f"Ollama at {base_url} closed the connection before it answered.",
            code="upstream_error",
            type="server_error",
        )
    return APIError(
        502,
        f"Cannot reach Ollama at {base_url}: {_reason(exc)}.",
        code="upstream_unreachable",
        type="server_error",
    )


def upstream_status_error(status: int, raw: bytes, headers: Any, model: Any) -> APIError:
    """Map a native error status and body ({"error": "..."}) to an OpenAI-shaped APIError."""
    message = ""
    try:
        data = json.loads(raw) if raw else {}
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            message = data["error"]
    except (json.JSONDecodeError, UnicodeDecodeError):
        message = raw[:300].decode("utf-8", "replace")
    if status == 404:
        return APIError(
            404,
            message or f"The model '{model}' does not exist.",
            param="model",
            code="model_not_found",
        )
    if status == 503:
        retry = headers.get("Retry-After", "1") if headers is not None else "1"
        return APIError(
            503,
            message or "Ollama is busy; try again.",
            code="overloaded",
            type="server_error",
            headers={"Retry-After": retry},
        )
    if status == 403 and not message:
        message = (
            "Ollama refused the request (403). If Ollama listens on loopback, connect "
            "through 127.0.0.1 or localhost, or set OLLAMA_HOST=0.0.0.0."
        )
    if status in (400, 413):
        return APIError(400, message or "Ollama rejected the request.", code="upstream_rejected")
    if status == 499:
        return APIError(499, message or "Request cancelled.", code="cancelled")
    return APIError(
        502,
        f"Ollama error ({status}): {message or 'no details'}",
        code="upstream_error",
        type="server_error",
    )
