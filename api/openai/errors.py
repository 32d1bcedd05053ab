"""OpenAI's error shape, {"error": {message, type, param, code}}, for every /v1 error."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.core.errors import APIError


def openai_error_body(err: APIError) -> dict[str, Any]:
    """The JSON body OpenAI clients parse."""
    return {
        "error": {"message": err.message, "type": err.type, "param": err.param, "code": err.code}
    }


def openai_error(err: APIError) -> web.Response:
    """An error as OpenAI's JSON response, with its headers (Retry-After, ...)."""
    return web.json_response(openai_error_body(err), status=err.status, headers=err.headers)
