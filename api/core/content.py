"""Content helpers every protocol shares: images, tool-call arguments, inline thinking (pure)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

from state.options import OptionError

MAX_IMAGE_URLS = 16  # http(s) image URLs per request (each is fetched: api.core.images)
_URLSAFE_B64 = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")


def split_inline_thinking(text: str) -> tuple[str | None, str]:
    """'<think>t</think>answer' -> ('t', 'answer'); other text -> (None, text)."""
    stripped = text.lstrip()
    if not stripped.startswith("<think>"):
        return None, text
    end = stripped.find("</think>")
    if end < 0:
        return None, text
    return stripped[len("<think>") : end].strip(), stripped[end + len("</think>") :].lstrip()


def image_source(url: str, param: str) -> str:
    """A data: URL -> raw base64; an http(s) URL is kept for fetching."""
    if url.startswith(("http://", "https://")):
        return url
    if url.startswith("data:"):
        header, sep, data = url.partition(",")
        if not sep or not header.endswith(";base64"):
            raise OptionError(
                param, f"'{param}' must be a base64 data URL (data:image/png;base64,...)."
            )
        return check_base64(data, param)
    raise OptionError(param, f"'{param}' must be a data: URL or an http(s) URL.")


def check_base64(data: Any, param: str) -> str:
    """Validate standard base64 and return it padded, as Ollama wants."""
    if not isinstance(data, str) or not data.strip():
        raise OptionError(param, f"'{param}' must be base64 data.")
    data = "".join(data.split())
    data += "=" * (-len(data) % 4)
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        # URL-safe alphabet: re-encode in the standard one Ollama expects.
        if not _URLSAFE_B64.match(data):
            raise OptionError(param, f"'{param}' is not valid base64.") from None
        data = base64.b64encode(base64.urlsafe_b64decode(data)).decode()
    return str(data)


def parse_arguments(arguments: Any) -> dict[str, Any]:
    """OpenAI's arguments string -> object: "" is {}, invalid JSON is kept as {"_raw": ...}."""
    if arguments is None:
        return {}
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if not isinstance(arguments, str):
        return {"_raw": json.dumps(arguments)}
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"_raw": arguments}
