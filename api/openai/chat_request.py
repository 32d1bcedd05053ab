"""OpenAI chat request -> native /api/chat body (pure; no I/O).

How `tool_choice` is honoured (Ollama cannot force a tool call natively):
- "none": the tools are not sent (tool history in messages is still sent), and any call the
  model makes anyway is discarded.
- "auto" or absent: the tools are sent as they are.
- "required": all tools are sent, plus a system message telling the model it must answer by
  calling one of them. Without streaming, an answer with no call is retried once (the usage
  then counts both attempts); if the retry has no call either, its text is returned with
  finish_reason "stop". Streaming answers cannot be retried, so they get the nudge only.
- a named function {"type": "function", "function": {"name": X}}: only tool X is sent, with a
  system message telling the model to call X, and the output is constrained with `format` to
  X's parameter schema. A native call from the model is returned as is; otherwise the JSON the
  model wrote becomes the arguments of a synthesized call to X (its text is held back until
  the end of the answer for this, also when streaming). A name not among `tools` is a 400.
- `parallel_tool_calls: false`: only the first call the model makes is returned.

http(s) image URLs are left in `images` as URLs; api.core.images fetches them before sending.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from api.core.content import (
    MAX_IMAGE_URLS,
    check_base64,
    image_source,
    parse_arguments,
    split_inline_thinking,
)
from api.core.native import chat_body, has_images, image_urls
from api.core.params import read_params
from api.core.tools import FunctionTool, ToolChoice, ToolPlan, plan_tools
from state.options import OptionError

ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
}
MAX_N = 16


@dataclass
class ChatPlan:
    """The native request plus what the response side needs to know."""

    native: dict[str, Any]
    stream: bool = False
    include_usage: bool = False
    n: int = 1
    tool_choice: str = "auto"  # auto | none | required | named
    forced_function: str | None = None  # the named tool_choice, if any
    parallel_tool_calls: bool = True
    logprobs: bool = False
    image_urls: list[str] = field(default_factory=list)
    has_images: bool = False


def from_chat_request(
    body: Mapping[str, Any],
    *,
    model: str,
    capabilities: set[str] | None,
    overrides: Mapping[str, Any],
    enforce: Mapping[str, Any],
    defaults: Mapping[str, Any],
) -> ChatPlan:
    """Translate a whole chat request; raise OptionError naming the bad parameter."""
    messages = convert_messages(body.get("messages"))
    tool_plan = plan_openai_tools(body.get("tools"), body.get("tool_choice"))
    native = chat_body(
        model,
        messages,
        read_params(body),
        tool_plan,
        response_format(body.get("response_format")),
        capabilities=capabilities,
        overrides=overrides,
        enforce=enforce,
        defaults=defaults,
    )
    plan = ChatPlan(
        native=native, tool_choice=tool_plan.mode, forced_function=tool_plan.forced_function
    )
    plan.stream = _bool(body, "stream", False)
    stream_options = body.get("stream_options")
    if stream_options is not None:
        if not isinstance(stream_options, Mapping):
            raise OptionError("stream_options", "'stream_options' must be an object.")
        plan.include_usage = _bool(
            stream_options, "include_usage", False, "stream_options.include_usage"
        )
    plan.parallel_tool_calls = _bool(body, "parallel_tool_calls", True)
    plan.n = _int(body, "n", 1, 1, MAX_N)
    plan.logprobs = _bool(body, "logprobs", False)
    if plan.logprobs:
        native["logprobs"] = True
        if body.get("top_logprobs") is not None:
            native["top_logprobs"] = _int(body, "top_logprobs", 0, 0, 20)
    elif body.get("top_logprobs") is not None:
        raise OptionError("top_logprobs", "'top_logprobs' requires 'logprobs': true.")
    plan.image_urls = image_urls(messages)
    if len(plan.image_urls) > MAX_IMAGE_URLS:
        raise OptionError(
            "messages",
            f"Too many image URLs: {len(plan.image_urls)} (at most "
            f"{MAX_IMAGE_URLS} per request); send the others as "
            "base64 data: URLs.",
        )
    plan.has_images = has_images(messages)
    if (
        capabilities is not None
        and "vision" not in capabilities
        and _has_image_parts(body["messages"])
    ):
        # Ollama would answer without looking at the image (or fail); say so instead.
        raise OptionError("messages", f"The model '{model}' does not support images.")
    return plan


def _bool(body: Mapping[str, Any], name: str, default: bool, param: str | None = None) -> bool:
    """A boolean field (null means the default)."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise OptionError(param or name, f"'{param or name}' must be true or false.")
    return value


def _int(body: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    """An integer field within [low, high] (null means the default)."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise OptionError(name, f"'{name}' must be an integer.")
    if not low <= value <= high:
        raise OptionError(name, f"'{name}' must be between {low} and {high}.")
    return value


def _has_image_parts(messages: Sequence[Any]) -> bool:
    """Whether any message has an image_url part (input_audio also lands in `images`)."""
    return any(
        isinstance(m, Mapping)
        and isinstance(m.get("content"), list)
        and any(isinstance(p, Mapping) and p.get("type") == "image_url" for p in m["content"])
        for m in messages
    )


def _reasoning_details(details: Any) -> str | None:
    """Earlier reasoning in OpenRouter's `reasoning_details` list: its text parts joined."""
    if not isinstance(details, list):
        return None
    text = "".join(
        d["text"] for d in details if isinstance(d, Mapping) and isinstance(d.get("text"), str)
    )
    return text or None


def convert_messages(messages: Any) -> list[dict[str, Any]]:
    """OpenAI messages -> native messages (parts merged, images gathered, tool names kept)."""
    if not isinstance(messages, list) or not messages:
        raise OptionError("messages", "'messages' must be a non-empty array of messages.")
    out: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, Mapping):
            raise OptionError(where, f"'{where}' must be an object.")
        role = msg.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise OptionError(
                f"{where}.role", f"'{where}.role' must be one of {', '.join(ROLES)}; got {role!r}."
            )
        text, images = _content(msg.get("content"), f"{where}.content")
        native: dict[str, Any] = {"role": ROLES[role], "content": text}
        if images:
            native["images"] = images
        thinking = next(
            (
                msg[k]
                for k in ("reasoning_content", "reasoning", "thinking")
                if isinstance(msg.get(k), str) and msg[k]
            ),
            None,
        ) or _reasoning_details(msg.get("reasoning_details"))
        if native["role"] == "assistant":
            # Clients of the `inline` reasoning mode send <think>…</think> back in content.
            inline, answer = split_inline_thinking(text)
            if inline is not None:
                native["content"] = answer
                thinking = thinking or inline
            if thinking:
                native["thinking"] = thinking
        if native["role"] == "assistant" and msg.get("tool_calls"):
            native["tool_calls"] = _tool_calls(msg["tool_calls"], f"{where}.tool_calls", call_names)
        if native["role"] == "tool":
            call_id = msg.get("tool_call_id")
            if call_id is not None and not isinstance(call_id, str):
                raise OptionError(f"{where}.tool_call_id", "'tool_call_id' must be a string.")
            name = msg.get("name") if isinstance(msg.get("name"), str) else None
            name = name or (call_names.get(call_id) if call_id else None)
            if call_id:
                native["tool_call_id"] = call_id
            if name:
                native["tool_name"] = name
        out.append(native)
    return out


def _content(content: Any, where: str) -> tuple[str, list[str]]:
    """Message content (string, null or parts) -> (text, images)."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise OptionError(where, f"'{where}' must be a string or an array of content parts.")
    texts: list[str] = []
    images: list[str] = []
    for j, part in enumerate(content):
        pw = f"{where}[{j}]"
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, Mapping):
            raise OptionError(pw, f"'{pw}' must be a content part object.")
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text"):
            if not isinstance(part.get("text"), str):
                raise OptionError(f"{pw}.text", f"'{pw}.text' must be a string.")
            texts.append(part["text"])
        elif kind == "refusal":
            texts.append(str(part.get("refusal") or ""))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            if not isinstance(url, str) or not url:
                raise OptionError(
                    f"{pw}.image_url.url", f"'{pw}.image_url.url' must be a data: or http(s) URL."
                )
            images.append(image_source(url, f"{pw}.image_url.url"))
        elif kind == "input_audio":
            audio = part.get("input_audio")
            data = audio.get("data") if isinstance(audio, Mapping) else None
            images.append(check_base64(data, f"{pw}.input_audio.data"))
        else:
            raise OptionError(
                f"{pw}.type",
                f"Unsupported content part type {kind!r} in "
                f"'{pw}'; use text, image_url or input_audio.",
            )
    return "\n".join(texts), images


def _tool_calls(calls: Any, where: str, names: dict[str, str]) -> list[dict[str, Any]]:
    """Assistant tool_calls -> native calls, arguments parsed leniently."""
    if not isinstance(calls, list):
        raise OptionError(where, f"'{where}' must be an array.")
    out: list[dict[str, Any]] = []
    for k, call in enumerate(calls):
        cw = f"{where}[{k}]"
        fn = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise OptionError(f"{cw}.function.name", f"'{cw}.function.name' must be a string.")
        native: dict[str, Any] = {
            "function": {
                "index": k,
                "name": fn["name"],
                "arguments": parse_arguments(fn.get("arguments")),
            }
        }
        call_id = call.get("id")
        if isinstance(call_id, str) and call_id:
            native["id"] = call_id
            names[call_id] = fn["name"]
        out.append(native)
    return out


def response_format(rf: Any) -> str | dict[str, Any] | None:
    """OpenAI response_format -> native format."""
    if rf is None:
        return None
    if not isinstance(rf, Mapping) or not isinstance(rf.get("type"), str):
        raise OptionError("response_format", "'response_format' must be an object with a type.")
    kind = rf["type"]
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        spec = rf.get("json_schema")
        if not isinstance(spec, Mapping):
            raise OptionError(
                "response_format.json_schema",
                "'response_format.json_schema' must be an object with a schema.",
            )
        schema = spec.get("schema")
        if schema is None:
            return "json"
        if not isinstance(schema, Mapping):
            raise OptionError(
                "response_format.json_schema.schema",
                "'response_format.json_schema.schema' must be an object.",
            )
        return dict(schema)
    raise OptionError(
        "response_format.type",
        f"'response_format.type' must be text, json_object or json_schema; got {kind!r}.",
    )


def read_tool_choice(choice: Any) -> ToolChoice:
    """OpenAI chat's tool_choice: none | auto | required | {"type": "function", ...}."""
    if choice is None or choice in ("auto", "none", "required"):
        return ToolChoice(choice or "auto")
    if isinstance(choice, Mapping):
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, Mapping) else None
        if isinstance(name, str):
            return ToolChoice("named", name)
    raise OptionError(
        "tool_choice",
        "'tool_choice' must be 'none', 'auto', 'required' or "
        '{"type": "function", "function": {"name": …}}.',
    )


def read_tools(tools: Any) -> list[FunctionTool]:
    """OpenAI chat's tools ({"type": "function", "function": {...}}) as FunctionTools."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise OptionError("tools", "'tools' must be an array of tools.")
    out: list[FunctionTool] = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, Mapping) else None
        if (
            not isinstance(tool, Mapping)
            or tool.get("type", "function") != "function"
            or not isinstance(fn, Mapping)
            or not isinstance(fn.get("name"), str)
            or not fn["name"]
        ):
            raise OptionError(
                f"tools[{i}]",
                f'\'tools[{i}]\' must be {{"type": "function", "function": {{"name"…}}}}.',
            )
        params = fn.get("parameters")
        if params is not None and not isinstance(params, Mapping):
            raise OptionError(
                f"tools[{i}].function.parameters",
                f"'tools[{i}].function.parameters' must be a JSON Schema object.",
            )
        description = fn.get("description")
        out.append(
            FunctionTool(fn["name"], description if isinstance(description, str) else None, params)
        )
    return out


def plan_openai_tools(tools: Any, choice: Any) -> ToolPlan:
    """OpenAI chat's tools and tool_choice planned for Ollama (api.core.tools)."""
    return plan_tools(read_tools(tools), read_tool_choice(choice))


def convert_tools(tools: Any, choice: Any) -> tuple[list[dict[str, Any]], str | None, str]:
    """Tools and tool_choice -> (native tools, system nudge or None, choice mode)."""
    plan = plan_openai_tools(tools, choice)
    return plan.tools, plan.nudge, plan.mode
