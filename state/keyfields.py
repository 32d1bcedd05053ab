"""Checking key fields from the admin API or the CLI, and the key's public JSON form."""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from state.registry import ApiKey

EDITABLE = ("name", "models", "enabled", "expires_at", "rpm", "tpm", "max_concurrency", "notes")
REQUIRED_ON_CREATE = ("name", "models")
MAX_NAME = 100
MAX_NOTES = 2000
MAX_LIMIT = 10**9


class FieldError(ValueError):
    """A bad field value; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _plain_text(field: str, value: Any, max_len: int, *, required: bool) -> str:
    """A string without control characters (newlines allowed in notes only)."""
    if not isinstance(value, str):
        raise FieldError(field, f"'{field}' must be a string.")
    text: str = value.strip()
    if required and not text:
        raise FieldError(field, f"'{field}' must not be empty.")
    if len(text) > max_len:
        raise FieldError(field, f"'{field}' is too long (at most {max_len} characters).")
    allowed = "\n\t" if field == "notes" else ""
    if any(unicodedata.category(c) == "Cc" and c not in allowed for c in text):
        raise FieldError(field, f"'{field}' must not contain control characters.")
    if any(unicodedata.category(c) == "Cs" for c in text):
        raise FieldError(
            field,
            f"'{field}' is not valid Unicode text (it contains a lone surrogate such as \\ud800).",
        )
    return text


def parse_models(value: Any) -> list[str]:
    """Allowed models: a list (or comma-separated string) of names or globs like `qwen3*`."""
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FieldError(
            "models",
            "'models' must be a list of model names or patterns, "
            'e.g. ["llama3.2", "qwen3*"] or ["*"] for all.',
        )
    models: list[str] = []
    for raw in value:
        name = raw.strip()
        if not name:
            continue
        if len(name) > 200 or any(
            c.isspace() or unicodedata.category(c) in ("Cc", "Cs") for c in name
        ):
            raise FieldError("models", f"'{name[:40]}' is not a valid model name or pattern.")
        if name not in models:
            models.append(name)
    if not models:
        raise FieldError(
            "models", "'models' must name at least one model or pattern ('*' allows all)."
        )
    return models


def parse_limit(field: str, value: Any) -> int | None:
    """A positive integer limit, or None for unlimited."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise FieldError(
            field, f"'{field}' must be a whole number of at least 1, or null for no limit."
        )
    return value


def parse_expiry(value: Any) -> float | None:
    """An ISO 8601 date/time (UTC unless it says otherwise), Unix seconds, or null (never)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            raise FieldError(
                "expires_at",
                "'expires_at' must be an ISO 8601 date or time, "
                "e.g. 2027-01-31 or 2027-01-31T18:00:00Z.",
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1e11:
        return float(value)  # Unix seconds, as the admin page sends
    raise FieldError(
        "expires_at", "'expires_at' must be an ISO 8601 date/time string, Unix seconds, or null."
    )


def check_fields(body: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
    """Validate a create/update body; returns the checked values. Raises FieldError."""
    for name in body:
        if name not in EDITABLE:
            raise FieldError(name, f"Unknown field '{name}'. Allowed: {', '.join(EDITABLE)}.")
    if creating:
        for name in REQUIRED_ON_CREATE:
            if name not in body:
                raise FieldError(name, f"'{name}' is required.")
    out: dict[str, Any] = {}
    for name, value in body.items():
        if name == "name":
            out[name] = _plain_text(name, value, MAX_NAME, required=True)
        elif name == "notes":
            out[name] = "" if value is None else _plain_text(name, value, MAX_NOTES, required=False)
        elif name == "models":
            out[name] = parse_models(value)
        elif name == "enabled":
            if not isinstance(value, bool):
                raise FieldError(name, "'enabled' must be true or false.")
            out[name] = value
        elif name == "expires_at":
            out[name] = parse_expiry(value)
        else:
            out[name] = parse_limit(name, value)
    return out


def iso(ts: float | None) -> str | None:
    """A timestamp as ISO 8601 UTC, or None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def key_json(key: ApiKey, now: float | None = None) -> dict[str, Any]:
    """The public form of a key: never the secret or its hash."""
    now = time.time() if now is None else now
    grace = [until for _h, until in key.previous if until > now]
    return {
        "id": key.id,
        "name": key.name,
        "masked": key.masked,
        "models": list(key.models),
        "enabled": key.enabled,
        "expires_at": iso(key.expires_at),
        "expired": key.expires_at is not None and key.expires_at <= now,
        "rpm": key.rpm,
        "tpm": key.tpm,
        "max_concurrency": key.max_concurrency,
        "notes": key.notes,
        "created_at": iso(key.created_at),
        "last_used_at": iso(key.last_used_at),
        "request_count": key.request_count,
        "previous_secret_valid_until": iso(max(grace)) if grace else None,
    }
