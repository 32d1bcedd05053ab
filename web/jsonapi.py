"""The admin JSON API's one error shape: {"error": {"message", "field"?}}, and body parsing."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from state.store import StateFileError

log = logging.getLogger(__name__)
BODY_TIMEOUT = 30.0  # seconds to receive a request body once the headers are in


class AdminError(Exception):
    """An admin API error: status, plain-words message, and the field it is about."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = dict(headers or {})
        self.fields = dict(fields or {})

    def response(self) -> web.Response:
        """This error as a JSON response."""
        return json_error(self.status, self.message, self.field, self.headers, self.fields)


def json_error(
    status: int,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
    fields: Mapping[str, str] | None = None,
) -> web.Response:
    """A JSON error response in the admin API's shape."""
    err: dict[str, Any] = {"message": message}
    if field:
        err["field"] = field
    if fields:
        err["fields"] = dict(fields)
    return web.json_response({"error": err}, status=status, headers=headers)


def bad(message: str, field: str | None = None) -> AdminError:
    """A 400 naming the field."""
    return AdminError(400, message, field)


async def read_body(request: web.Request) -> bytes:
    """The raw body, or a 408 when the client stalls while sending it."""
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            return await request.read()
    except TimeoutError:
        raise AdminError(
            408, f"The request body did not arrive within {BODY_TIMEOUT:g} seconds."
        ) from None


async def read_json(
    request: web.Request, allowed: frozenset[str] | None = None, *, optional: bool = False
) -> dict[str, Any]:
    """The body as a JSON object; 400 for malformed JSON, a non-object or unknown fields."""
    raw = await read_body(request)
    if not raw.strip():
        if optional:
            return {}
        raise bad("The request body is empty; a JSON object is required.")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = (
            f" ({exc.msg} at position {exc.pos})" if isinstance(exc, json.JSONDecodeError) else ""
        )
        raise bad(f"The request body is not valid JSON{where}.") from None
    except RecursionError:
        raise bad("The request body is not acceptable JSON: nested too deeply.") from None
    except ValueError as exc:  # e.g. an integer literal longer than Python's digit limit
        raise bad(f"The request body is not acceptable JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise bad("The request body must be a JSON object.")
    for name, value in body.items():
        if not _encodable(name) or not _encodable(value):
            raise bad(
                f"'{_printable(name)}' is not valid Unicode text (it contains a lone "
                "surrogate such as \\ud800).",
                _printable(name),
            )
    if allowed is not None:
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise bad(
                f"Unknown field '{unknown[0]}'. Allowed: {', '.join(sorted(allowed))}.", unknown[0]
            )
    return body


def _encodable(value: Any) -> bool:
    """Whether every string in a parsed JSON value can be stored as UTF-8 (no lone surrogate)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _printable(name: str) -> str:
    """A field name safe to put into a JSON answer and a log line."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


@web.middleware
async def api_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure under /admin/api/ becomes the JSON error shape; never an HTML page."""
    if not request.path.startswith("/admin/api/"):  # an admin page: its own error middleware
        return await handler(request)
    try:
        return await handler(request)
    except AdminError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            message = f"Unknown admin API route: {request.method} {request.path}."
        elif exc.status == 405:
            message = f"Method {request.method} is not allowed on {request.path}."
        elif exc.status == 413:
            message = f"Request body too large: the limit is {request.client_max_size} bytes."
        else:
            message = exc.text or exc.reason
        return json_error(
            exc.status,
            message,
            headers={k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")},
        )
    except StateFileError as exc:
        log.error("admin change not saved (%s %s): %s", request.method, request.path, exc)
        return json_error(503, f"The change could not be saved: {exc}")
    except OSError as exc:
        # The state file could not be written: the writer changed nothing in memory either.
        log.error("admin change not saved (%s %s): %s", request.method, request.path, exc)
        return json_error(
            503,
            f"The change could not be saved to disk ({exc.strerror or exc}); nothing was changed.",
        )
    except Exception:
        log.exception("unhandled admin API error on %s %s", request.method, request.path)
        return json_error(500, "Internal error in the admin API; see the gateway log.")
