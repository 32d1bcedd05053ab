"""Anthropic Messages request (/v1/messages, /v1/messages/count_tokens) -> native /api/chat body.

Pure: no aiohttp, no I/O. Errors are OptionError naming the field (`max_tokens`,
`messages[2].content[1].source.data`, `thinking.budget_tokens`, ...), which the handler turns
into a 400 `invalid_request_error`.

Decisions:
- `system` and `messages` are converted by api.anthropic.messages (see there).
- Tools without a `type` or with `type: "custom"` are sent; Anthropic server tools (any other
  `type`: web_search_*, bash_*, text_editor_*, computer_*, ...) are left out and listed in
  `dropped_tools`. Forcing one with `tool_choice` is a 400. `tool_choice` `any` is
  api.core.tools' "required", `tool` is "named"; `disable_parallel_tool_use` keeps one call.
- `thinking`: `enabled` needs `budget_tokens` >= 1024, as Anthropic requires, and maps to a
  level: < 4096 low, < 16384 medium, else high. `budget_tokens < max_tokens` is not enforced:
  Anthropic waives it for interleaved thinking (a beta header this layer does not see), and
  Ollama has no budget anyway. `disabled` is think false. `adaptive`, or no `thinking`,
  leaves think unset unless `output_config.effort` names a level (low, medium, high; xhigh
  and max -> max). `display: "omitted"` sets `thinking_output` to "omit".
- `stop_sequences` are not sent to Ollama as `stop`: the answer decoder matches them, so the
  reply can say which one ended it (stop_reason "stop_sequence").
- `output_config.format` (or the older top-level `output_format`) `{"type": "json_schema",
  "schema"}` becomes the native `format`.
- `metadata.user_id` becomes `end_user`, at most 256 characters. Claude Code sends a JSON
  object (or, in older versions, `user_<hash>_account_<uuid>_session_<uuid>`); that becomes a
  readable short form such as "account:1a2b3c4d session:5e6f7a8b" ("device:" when there is
  no account), eight characters of each id.
- Accepted and ignored: `cache_control` anywhere, `citations`, `context_management`,
  `container`, `mcp_servers`, `service_tier`, `inference_geo`, `speed`, `diagnostics`,
  `metadata` other than `user_id`, and unknown top-level fields. `top_k` is Ollama's top_k.
  Ollama extras are accepted as on /v1/chat/completions: `options`, `keep_alive`, `think`
  (when there is no `thinking`), `truncate`, `shift` and top-level options such as `num_ctx`
  (except `stop`: use `stop_sequences`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from api.anthropic.messages import convert_messages, system_messages
from api.core.answer import AnswerDecoder
from api.core.content import MAX_IMAGE_URLS
from api.core.native import chat_body, has_images, image_urls
from api.core.params import read_params
from api.core.tools import FunctionTool, ToolChoice, plan_tools
from api.core.wire import encode_json
from state.options import OPTIONS_BY_NAME, OptionError

TOOL_CHOICES = {"auto": "auto", "any": "required", "tool": "named", "none": "none"}
EFFORT_TO_THINK = {"low": "low", "medium": "medium", "high": "high", "xhigh": "max", "max": "max"}
MIN_THINKING_BUDGET = 1024
# The decoder checks every stop sequence on every piece of text: bound the per-token work.
MAX_STOP_SEQUENCES = 64
MAX_END_USER = 256
NATIVE_EXTRAS = ("options", "keep_alive", "think", "truncate", "shift")
# estimate_tokens: UTF-8 bytes per token, tokens per message (role and template markers), and
# a flat guess per image (vision encoders use some 256 to 1,000 tokens per image).
BYTES_PER_TOKEN = 4
MESSAGE_TOKENS = 4
IMAGE_TOKENS = 768
_LEGACY_USER = re.compile(r"^user_([0-9a-f]+)_account_([0-9a-f-]*)_session_([0-9a-f-]+)$")


@dataclass
class MessagesPlan:
    """The native request plus what the response side needs to know."""

    native: dict[str, Any]
    stream: bool = False
    stop_sequences: list[str] = field(default_factory=list)
    tool_choice: str = "auto"  # auto | none | required | named
    forced_function: str | None = None
    parallel_tool_calls: bool = True
    thinking_requested: bool = False  # thinking enabled or adaptive, or an effort level
    thinking_output: str = "show"  # show | omit (display "omitted": empty text, signature)
    end_user: str | None = None
    dropped_tools: list[str] = field(default_factory=list)
    image_urls: list[str] = field(default_factory=list)
    has_images: bool = False

    def decoder(self) -> AnswerDecoder:
        """An answer decoder for this request, with Anthropic-style `toolu_` call ids."""
        return AnswerDecoder(
            tool_choice=self.tool_choice,
            parallel_tool_calls=self.parallel_tool_calls,
            forced_function=self.forced_function,
            stop_sequences=tuple(self.stop_sequences),
            call_prefix="toolu_",
        )


def from_messages_request(
    body: Mapping[str, Any],
    *,
    model: str,
    capabilities: set[str] | None,
    overrides: Mapping[str, Any],
    enforce: Mapping[str, Any],
    defaults: Mapping[str, Any],
    count_only: bool = False,
) -> MessagesPlan:
    """Translate a whole Messages request; raise OptionError naming the bad field."""
    sampling = read_sampling(body, count_only)
    think, requested, omitted = read_thinking(body.get("thinking"), body.get("output_config"))
    if think is not None:
        sampling["think"] = think
    tools, dropped = read_tools(body.get("tools"))
    choice, parallel = read_tool_choice(body.get("tool_choice"), tools, dropped)
    tool_plan = plan_tools(tools, choice)
    messages = [*system_messages(body.get("system")), *convert_messages(body.get("messages"))]
    native = chat_body(
        model,
        messages,
        read_params(sampling),
        tool_plan,
        read_format(body),
        capabilities=capabilities,
        overrides=overrides,
        enforce=enforce,
        defaults=defaults,
    )
    urls = image_urls(messages)
    if len(urls) > MAX_IMAGE_URLS:
        raise OptionError(
            "messages", f"Too many image URLs: {len(urls)} (at most {MAX_IMAGE_URLS})."
        )
    images = has_images(messages)
    if images and capabilities is not None and "vision" not in capabilities:
        raise OptionError("messages", f"The model '{model}' does not support images.")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise OptionError("stream", "'stream' must be true or false.")
    return MessagesPlan(
        native=native,
        stream=bool(stream) and not count_only,
        stop_sequences=read_stop_sequences(body.get("stop_sequences")),
        tool_choice=tool_plan.mode,
        forced_function=tool_plan.forced_function,
        parallel_tool_calls=parallel,
        thinking_requested=requested,
        thinking_output="omit" if omitted else "show",
        end_user=read_end_user(body.get("metadata")),
        dropped_tools=dropped,
        image_urls=urls,
        has_images=images,
    )


# -- parameters ---------------------------------------------------------------------------
def _integer(value: Any, param: str, low: int) -> int:
    """An integer (an integral float is accepted) of at least `low`."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise OptionError(param, f"'{param}' must be an integer.")
    if value < low:
        raise OptionError(param, f"'{param}' must be at least {low}.")
    return value


def read_sampling(body: Mapping[str, Any], count_only: bool = False) -> dict[str, Any]:
    """Anthropic sampling fields, checked, plus Ollama extras, as a dict for read_params."""
    out = {
        name: body[name]
        for name in (*OPTIONS_BY_NAME, *NATIVE_EXTRAS)
        if name != "stop" and body.get(name) is not None
    }
    if body.get("max_tokens") is not None:
        out["max_tokens"] = _integer(body["max_tokens"], "max_tokens", 1)
    elif not count_only:
        raise OptionError("max_tokens", "'max_tokens' is required.")
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise OptionError(name, f"'{name}' must be a number between 0 and 1.")
        out[name] = value
    if body.get("top_k") is not None:
        out["top_k"] = _integer(body["top_k"], "top_k", 0)
    return out


def read_stop_sequences(value: Any) -> list[str]:
    """`stop_sequences`: an array of non-empty strings."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise OptionError("stop_sequences", "'stop_sequences' must be an array of strings.")
    if len(value) > MAX_STOP_SEQUENCES:
        raise OptionError(
            "stop_sequences", f"At most {MAX_STOP_SEQUENCES} stop sequences are allowed."
        )
    for i, seq in enumerate(value):
        if not isinstance(seq, str) or not seq:
            raise OptionError(
                f"stop_sequences[{i}]", f"'stop_sequences[{i}]' must be a non-empty string."
            )
    return list(value)


def read_thinking(thinking: Any, output_config: Any) -> tuple[bool | str | None, bool, bool]:
    """`thinking` and `output_config.effort` -> (native think, requested, display omitted)."""
    effort: str | None = None
    if output_config is not None:
        if not isinstance(output_config, Mapping):
            raise OptionError("output_config", "'output_config' must be an object.")
        raw = output_config.get("effort")
        if raw is not None and raw not in EFFORT_TO_THINK:
            raise OptionError(
                "output_config.effort",
                f"'output_config.effort' must be one of {', '.join(EFFORT_TO_THINK)}.",
            )
        effort = EFFORT_TO_THINK.get(raw) if raw is not None else None
    if thinking is None:
        return effort, effort is not None, False
    if not isinstance(thinking, Mapping):
        raise OptionError("thinking", "'thinking' must be an object with a type.")
    display = thinking.get("display")
    if display is not None and display not in ("summarized", "omitted"):
        raise OptionError("thinking.display", "'thinking.display' must be summarized or omitted.")
    kind = thinking.get("type")
    if kind == "disabled":
        return False, False, False
    if kind == "adaptive":
        return effort, True, display == "omitted"
    if kind == "enabled":
        if thinking.get("budget_tokens") is None:
            raise OptionError("thinking.budget_tokens", "'thinking.budget_tokens' is required.")
        budget = _integer(thinking["budget_tokens"], "thinking.budget_tokens", MIN_THINKING_BUDGET)
        level = "low" if budget < 4096 else "medium" if budget < 16384 else "high"
        return level, True, display == "omitted"
    raise OptionError("thinking.type", "'thinking.type' must be enabled, disabled or adaptive.")


def read_format(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """`output_config.format` (or legacy `output_format`) json_schema -> the native format."""
    config = body.get("output_config")
    param = "output_config.format"
    fmt = config.get("format") if isinstance(config, Mapping) else None
    if fmt is None:
        param, fmt = "output_format", body.get("output_format")
    if fmt is None:
        return None
    if (
        not isinstance(fmt, Mapping)
        or fmt.get("type") != "json_schema"
        or not isinstance(fmt.get("schema"), Mapping)
    ):
        raise OptionError(param, f"'{param}' must be a json_schema format with a schema.")
    return dict(fmt["schema"])


def read_end_user(metadata: Any) -> str | None:
    """`metadata.user_id`, bounded, or a short form of Claude Code's structured id."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise OptionError("metadata", "'metadata' must be an object.")
    user = metadata.get("user_id")
    if user is None:
        return None
    if not isinstance(user, str):
        raise OptionError("metadata.user_id", "'metadata.user_id' must be a string.")
    ids: dict[str, Any] = {}
    if user.startswith("{") and len(user) <= 4096:
        try:
            parsed = json.loads(user)
        except json.JSONDecodeError:
            parsed = None
        ids = parsed if isinstance(parsed, dict) else {}
    elif match := _LEGACY_USER.match(user):
        ids = dict(zip(("device_id", "account_uuid", "session_id"), match.groups(), strict=True))
    # The account names the user; the device only when there is none (API-key logins).
    who = next(
        (
            [f"{label}:{ids[key][:8]}"]
            for key, label in (("account_uuid", "account"), ("device_id", "device"))
            if isinstance(ids.get(key), str) and ids[key]
        ),
        [],
    )
    if isinstance(ids.get("session_id"), str) and ids["session_id"]:
        who.append(f"session:{ids['session_id'][:8]}")
    return " ".join(who) or user[:MAX_END_USER] or None


# -- tools --------------------------------------------------------------------------------
def read_tools(tools: Any) -> tuple[list[FunctionTool], list[str]]:
    """Client tools as FunctionTools, and the names of the server tools left out."""
    if tools is None:
        return [], []
    if not isinstance(tools, list):
        raise OptionError("tools", "'tools' must be an array of tools.")
    out: list[FunctionTool] = []
    dropped: list[str] = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, Mapping):
            raise OptionError(where, f"'{where}' must be an object.")
        kind, name = tool.get("type"), tool.get("name")
        if kind not in (None, "custom"):
            if not isinstance(kind, str):
                raise OptionError(f"{where}.type", f"'{where}.type' must be a string.")
            dropped.append(name if isinstance(name, str) and name else kind)
            continue
        if not isinstance(name, str) or not name:
            raise OptionError(f"{where}.name", f"'{where}.name' must be a non-empty string.")
        schema, description = tool.get("input_schema"), tool.get("description")
        if schema is not None and not isinstance(schema, Mapping):
            raise OptionError(
                f"{where}.input_schema", f"'{where}.input_schema' must be a JSON Schema object."
            )
        if description is not None and not isinstance(description, str):
            raise OptionError(f"{where}.description", f"'{where}.description' must be a string.")
        out.append(FunctionTool(name, description, schema))
    return out, dropped


def read_tool_choice(
    choice: Any, tools: list[FunctionTool], dropped: list[str]
) -> tuple[ToolChoice, bool]:
    """`tool_choice` -> (ToolChoice, parallel tool calls allowed)."""
    if choice is None:
        return ToolChoice(), True
    if not isinstance(choice, Mapping) or choice.get("type") not in TOOL_CHOICES:
        raise OptionError(
            "tool_choice", "'tool_choice' must be an object with type auto, any, tool or none."
        )
    disable = choice.get("disable_parallel_tool_use")
    if disable is not None and not isinstance(disable, bool):
        raise OptionError(
            "tool_choice.disable_parallel_tool_use",
            "'tool_choice.disable_parallel_tool_use' must be true or false.",
        )
    mode, name = TOOL_CHOICES[choice["type"]], choice.get("name")
    if mode == "named":
        if not isinstance(name, str) or not name:
            raise OptionError("tool_choice.name", "'tool_choice.name' must name a tool.")
        if name in dropped:
            message = f"'tool_choice.name' forces the server tool {name!r}, which is not run here."
            raise OptionError("tool_choice.name", message)
        if all(t.name != name for t in tools):
            raise OptionError(
                "tool_choice.name",
                f"'tool_choice.name' names {name!r}, which is not among 'tools'.",
            )
    elif mode == "required" and not tools:
        raise OptionError(
            "tool_choice",
            "'tool_choice' is 'any' but no tools were given"
            + (" (server tools are not run here)." if dropped else "."),
        )
    return ToolChoice(mode, name if mode == "named" else None), not disable


# -- count_tokens -------------------------------------------------------------------------
def estimate_tokens(native: Mapping[str, Any]) -> int:
    """Estimate a native body's prompt tokens (for count_tokens when Ollama cannot tell).

    UTF-8 bytes / 4, rounded up, over each message's role, content, thinking, tool name and
    tool calls (name and arguments JSON), and over the tool schemas and format JSON; plus 4
    tokens per message and 768 per image. Bytes rather than characters make text in
    non-Latin scripts count more (about 0.75 token per CJK character), as tokenizers do.
    """
    size = images = 0
    messages = native.get("messages") or []
    for message in messages:
        for key in ("role", "content", "thinking", "tool_name"):
            value = message.get(key)
            if isinstance(value, str):
                size += len(value.encode())
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            size += len(str(function.get("name", "")).encode())
            size += len(encode_json(function.get("arguments", {})).encode())
        images += len(message.get("images") or ())
    for key in ("tools", "format"):
        if native.get(key):
            size += len(encode_json(native[key]).encode())
    return (
        math.ceil(size / BYTES_PER_TOKEN) + MESSAGE_TOKENS * len(messages) + IMAGE_TOKENS * images
    )
