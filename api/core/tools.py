"""Function tools and tool choice, whatever the protocol (pure; no I/O).

Each protocol reads its own tool and tool-choice shapes into `FunctionTool`s and a
`ToolChoice`; `plan_tools` then decides what Ollama gets. Ollama cannot force a tool call
natively, so:
- "none": the tools are not sent, and any call the model makes anyway is discarded;
- "auto": the tools are sent as they are;
- "required": all tools are sent, plus a system message telling the model it must call one;
- "named": only that tool is sent, with a system message to call it, and the output is
  constrained with `format` to its parameter schema (the answer side then turns JSON text
  into a call: `api.core.answer`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from api.core.schema import normalize_parameters
from state.options import OptionError

REQUIRED_NUDGE = (
    "You must respond by calling one of the provided tools; do not answer in plain text."
)


@dataclass(frozen=True)
class FunctionTool:
    """One function the model may call: its name, description and JSON Schema parameters."""

    name: str
    description: str | None = None
    parameters: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ToolChoice:
    """What the client asked: mode auto | none | required | named (with `name`)."""

    mode: str = "auto"
    name: str | None = None


@dataclass
class ToolPlan:
    """The native tools, an optional system nudge, the mode, and a forced format."""

    tools: list[dict[str, Any]] = field(default_factory=list)
    nudge: str | None = None
    mode: str = "auto"
    forced_function: str | None = None
    format: dict[str, Any] | None = None


def native_tool(tool: FunctionTool) -> dict[str, Any]:
    """A function tool in Ollama's shape, its schema repaired for Ollama's parser."""
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    function["parameters"] = normalize_parameters(
        tool.parameters or {"type": "object", "properties": {}}
    )
    return {"type": "function", "function": function}


def plan_tools(
    tools: list[FunctionTool], choice: ToolChoice, param: str = "tool_choice"
) -> ToolPlan:
    """Decide the native tools for a choice; a choice that cannot be honoured is a 400."""
    native = [native_tool(t) for t in tools]
    if choice.mode == "auto":
        return ToolPlan(native, None, "auto")
    if choice.mode == "none":
        return ToolPlan([], None, "none")
    if choice.mode == "required":
        if not native:
            raise OptionError(param, f"'{param}' is 'required' but no tools were given.")
        return ToolPlan(native, REQUIRED_NUDGE, "required")
    if choice.mode == "named" and choice.name is not None:
        chosen = [(t, n) for t, n in zip(tools, native, strict=True) if t.name == choice.name]
        if not chosen:
            raise OptionError(
                param, f"'{param}' names the function {choice.name!r}, which is not among 'tools'."
            )
        tool, spec = chosen[0]
        # Constrain the output to the function's arguments (the original, unnarrowed schema).
        fmt = dict(tool.parameters) if isinstance(tool.parameters, Mapping) else {"type": "object"}
        return ToolPlan(
            [spec],
            f"You must respond by calling the function '{choice.name}'; "
            "do not answer in plain text.",
            "named",
            choice.name,
            fmt,
        )
    raise ValueError(f"unknown tool choice mode {choice.mode!r}")
