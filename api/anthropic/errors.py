"""Anthropic's error shape, `{"type": "error", "error": {"type", "message"}}`, by status (pure)."""

from __future__ import annotations

from typing import Any

# Anthropic's documented error types by HTTP status. 503 (Ollama's full queue, the gateway's
# shutdown) is Anthropic's 529: the SDK retries both.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    """The error type for a status: the table, else by class (5xx api_error, else invalid)."""
    return ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")


def error_payload(kind: str, message: str) -> dict[str, Any]:
    """An error body (also the data of a stream's `event: error`) of a given type."""
    return {"type": "error", "error": {"type": kind, "message": message}}


def error_body(status: int, message: str) -> dict[str, Any]:
    """The JSON body of an error response with this status."""
    return error_payload(error_type(status), message)
