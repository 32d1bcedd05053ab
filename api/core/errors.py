"""The gateway's one error type, whatever the protocol: status, message, code and param.

Each surface renders it in its own wire shape (OpenAI's error JSON on /v1, Anthropic's on
/v1/messages): the pipeline middleware of that surface (api.core.pipeline) does the rendering.
`type` is OpenAI's classification of the status, which other shapes derive their own from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


class APIError(Exception):
    """An error to send to a client: status, message, code, param and optional headers."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or _TYPES.get(status, "server_error")
        self.headers = dict(headers or {})


def bad_request(
    message: str, param: str | None = None, code: str = "invalid_request_error"
) -> APIError:
    """A 400 naming the offending parameter."""
    return APIError(400, message, param=param, code=code)


def model_not_found(model: str) -> APIError:
    """The answer for a model that does not exist or that the key may not use."""
    return APIError(
        404,
        f"The model '{model}' does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """Read the body as a JSON object, or raise a 400 that says what is wrong."""
    raw = await request.read()
    if not raw.strip():
        raise bad_request("Request body is empty; a JSON object is required.", code="invalid_json")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        detail = (
            f"{exc.msg} at position {exc.pos}"
            if isinstance(exc, json.JSONDecodeError)
            else "not UTF-8"
        )
        raise bad_request(
            f"Request body is not valid JSON: {detail}.", code="invalid_json"
        ) from None
    except RecursionError:
        raise bad_request(
            "Request body is not acceptable JSON: nested too deeply.", code="invalid_json"
        ) from None
    except ValueError as exc:  # e.g. an integer literal longer than Python's digit limit
        raise bad_request(
            f"Request body is not acceptable JSON: {exc}.", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise bad_request("Request body must be a JSON object.", code="invalid_json")
    return body
