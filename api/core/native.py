"""The native /api/chat body every chat-like protocol ends in (pure; no I/O).

A protocol adapter reads its request into native messages, request `Params`, a `ToolPlan`
and an output format; `chat_body` then applies the model's settings in the project-wide
order (enforce > request > model overrides > global defaults), drops what the model cannot
do, and builds the body Ollama gets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api.core.params import Params, apply_capabilities, layer_params, native_fields
from api.core.tools import ToolPlan
from state.options import OptionError


def chat_body(
    model: str,
    messages: list[dict[str, Any]],
    request: Params,
    tools: ToolPlan,
    fmt: str | dict[str, Any] | None,
    *,
    capabilities: set[str] | None,
    overrides: Mapping[str, Any],
    enforce: Mapping[str, Any],
    defaults: Mapping[str, Any],
) -> dict[str, Any]:
    """The streaming native chat body; raise OptionError for what the model cannot do."""
    params = layer_params(request, overrides, enforce, defaults)
    apply_capabilities(params, capabilities)
    if params.think is True and "gpt-oss" in model:
        params.think = "medium"  # gpt-oss only understands levels; true means medium
    native: dict[str, Any] = {"model": model, "messages": messages, "stream": True}
    native.update(native_fields(params))
    if tools.format is not None:
        native["format"] = tools.format
    elif fmt is not None:
        native["format"] = fmt
    if tools.tools:
        if capabilities is not None and "tools" not in capabilities:
            raise OptionError("tools", f"The model '{model}' does not support tools.")
        native["tools"] = tools.tools
    if tools.nudge:
        native["messages"] = [{"role": "system", "content": tools.nudge}, *messages]
    return native


def has_images(messages: list[dict[str, Any]]) -> bool:
    """Whether any native message carries images."""
    return any(m.get("images") for m in messages)


def image_urls(messages: list[dict[str, Any]]) -> list[str]:
    """The http(s) image URLs still to fetch (api.core.images) in native messages."""
    return [
        img
        for m in messages
        for img in m.get("images", ())
        if isinstance(img, str) and img.startswith(("http://", "https://"))
    ]
