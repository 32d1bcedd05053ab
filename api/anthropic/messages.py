"""Anthropic `system` and `messages` -> native messages (pure; no I/O).

Errors are OptionError naming the block, such as `messages[2].content[1].source.data`.

- `system` (a string or text blocks, joined with a blank line) becomes a leading system
  message; `role: "system"` entries inside `messages` (Claude Code sends them) become system
  messages in place. Text blocks of one message are joined with a newline.
- A user message's `tool_result` blocks become native `tool` messages (with `tool_call_id` and
  the `tool_name` of the matching earlier `tool_use`), placed before the message's remaining
  text and images. `is_error: true` prefixes the result with "Error: " (or is "Error" when
  empty), so the model sees that the call failed. Images in a result go to its `images`.
- `thinking` blocks of an assistant message become native `thinking`; `redacted_thinking` is
  dropped (it is Claude's encrypted reasoning) and thinking signatures are not checked.
- `document` blocks with a plain-text (`text`) or `content` source, and `search_result`
  blocks, become text (a document's title and context, or a result's title and source,
  first, each on its own line). PDF, file and URL documents, and any other
  block type, are a 400 naming the block.
- Images: base64 (`media_type` image/*) is checked and passed on; `url` sources stay http(s)
  URLs for the gateway's guarded fetcher (api.core.images). A Files API source is a 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api.core.content import check_base64, parse_arguments
from state.options import OptionError


def _blocks(content: Any, where: str) -> list[Any]:
    """Message content as a list of blocks (a string is one text block)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise OptionError(where, f"'{where}' must be a string or an array of content blocks.")
    for j, block in enumerate(content):
        if not isinstance(block, Mapping):
            raise OptionError(f"{where}[{j}]", f"'{where}[{j}]' must be a content block object.")
    return content


def _text(block: Mapping[str, Any], where: str, key: str = "text") -> str:
    """A block's text field, which must be a string."""
    value = block.get(key)
    if not isinstance(value, str):
        raise OptionError(f"{where}.{key}", f"'{where}.{key}' must be a string.")
    return value


def _text_only(content: Any, where: str, sep: str) -> str:
    """Content that may hold only text blocks (system prompts), joined."""
    texts = []
    for j, block in enumerate(_blocks(content, where)):
        if block.get("type") != "text":
            raise OptionError(f"{where}[{j}].type", f"'{where}[{j}]' must be a text block.")
        texts.append(_text(block, f"{where}[{j}]"))
    return sep.join(texts)


def system_messages(system: Any) -> list[dict[str, Any]]:
    """Top-level `system` (string or text blocks) as a leading system message."""
    text = _text_only(system, "system", "\n\n")
    return [{"role": "system", "content": text}] if text else []


def convert_messages(messages: Any) -> list[dict[str, Any]]:
    """Anthropic messages -> native messages (tool names kept, tool results first)."""
    if not isinstance(messages, list) or not messages:
        raise OptionError("messages", "'messages' must be a non-empty array of messages.")
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_use id -> tool name, for the results
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, Mapping):
            raise OptionError(where, f"'{where}' must be an object.")
        role, content = msg.get("role"), msg.get("content")
        if role == "user":
            out.extend(_user(content, f"{where}.content", names))
        elif role == "assistant":
            out.append(_assistant(content, f"{where}.content", names))
        elif role == "system":
            text = _text_only(content, f"{where}.content", "\n")
            if text:
                out.append({"role": "system", "content": text})
        else:
            raise OptionError(
                f"{where}.role", f"'{where}.role' must be user, assistant or system; got {role!r}."
            )
    return out


def _user(content: Any, where: str, names: dict[str, str]) -> list[dict[str, Any]]:
    """One user message: its tool results as tool messages, then its text and images."""
    results: list[dict[str, Any]] = []
    texts: list[str] = []
    images: list[str] = []
    for j, block in enumerate(_blocks(content, where)):
        if block.get("type") == "tool_result":
            results.append(_tool_result(block, f"{where}[{j}]", names))
        else:
            _input_block(
                block,
                f"{where}[{j}]",
                texts,
                images,
                "text, image, document, search_result or tool_result",
            )
    if results and not texts and not images:
        return results
    message: dict[str, Any] = {"role": "user", "content": "\n".join(texts)}
    if images:
        message["images"] = images
    return [*results, message]


def _input_block(
    block: Mapping[str, Any], where: str, texts: list[str], images: list[str], allowed: str
) -> None:
    """A text, image, document or search_result block, into texts and images."""
    kind = block.get("type")
    if kind == "text":
        texts.append(_text(block, where))
    elif kind == "image":
        images.append(_image(block.get("source"), f"{where}.source"))
    elif kind == "document":
        source = block.get("source")
        if not isinstance(source, Mapping) or source.get("type") not in ("text", "content"):
            raise OptionError(
                f"{where}.source.type",
                f"Only plain-text documents are supported ('{where}.source.type' text or content).",
            )
        parts = [t for t in (block.get("title"), block.get("context")) if isinstance(t, str)]
        if source["type"] == "text":
            texts.append("\n".join([*parts, _text(source, f"{where}.source", "data")]))
        else:
            inner: list[str] = []
            for k, part in enumerate(_blocks(source.get("content"), f"{where}.source.content")):
                _input_block(part, f"{where}.source.content[{k}]", inner, images, "text or image")
            texts.append("\n".join([*parts, *inner]))
    elif kind == "search_result":
        inner = [
            _text(part, f"{where}.content[{k}]")
            for k, part in enumerate(_blocks(block.get("content"), f"{where}.content"))
        ]
        head = [block[k] for k in ("title", "source") if isinstance(block.get(k), str)]
        texts.append("\n".join([*head, *inner]))
    else:
        raise OptionError(
            f"{where}.type",
            f"Unsupported content block type {kind!r} in "
            f"'{where}'; this message may hold {allowed} blocks.",
        )


def _image(source: Any, where: str) -> str:
    """An image source: base64 data (checked) or an http(s) URL kept for fetching."""
    if not isinstance(source, Mapping):
        raise OptionError(where, f"'{where}' must be an object with a type (base64 or url).")
    kind = source.get("type")
    if kind == "base64":
        media_type = source.get("media_type")
        if not isinstance(media_type, str) or not media_type.startswith("image/"):
            raise OptionError(
                f"{where}.media_type",
                f"'{where}.media_type' must be an image type such as image/png.",
            )
        return check_base64(source.get("data"), f"{where}.data")
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise OptionError(f"{where}.url", f"'{where}.url' must be an http(s) URL.")
        return url
    raise OptionError(f"{where}.type", f"'{where}.type' must be base64 or url.")


def _tool_result(block: Mapping[str, Any], where: str, names: dict[str, str]) -> dict[str, Any]:
    """A tool_result block -> a native tool message."""
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise OptionError(f"{where}.tool_use_id", f"'{where}.tool_use_id' must be a string.")
    texts: list[str] = []
    images: list[str] = []
    for k, part in enumerate(_blocks(block.get("content"), f"{where}.content")):
        _input_block(
            part, f"{where}.content[{k}]", texts, images, "text, image, document or search_result"
        )
    is_error = block.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        raise OptionError(f"{where}.is_error", f"'{where}.is_error' must be true or false.")
    text = "\n".join(texts)
    if is_error:
        text = f"Error: {text}" if text else "Error"
    message: dict[str, Any] = {"role": "tool", "content": text, "tool_call_id": call_id}
    if call_id in names:
        message["tool_name"] = names[call_id]
    if images:
        message["images"] = images
    return message


def _assistant(content: Any, where: str, names: dict[str, str]) -> dict[str, Any]:
    """One assistant message: text, thinking and tool_use blocks."""
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(_blocks(content, where)):
        bw, kind = f"{where}[{j}]", block.get("type")
        if kind == "text":
            texts.append(_text(block, bw))
        elif kind == "thinking":
            thinking.append(_text(block, bw, "thinking"))
        elif kind == "tool_use":
            call_id, name = block.get("id"), block.get("name")
            if not isinstance(call_id, str) or not call_id:
                raise OptionError(f"{bw}.id", f"'{bw}.id' must be a string.")
            if not isinstance(name, str) or not name:
                raise OptionError(f"{bw}.name", f"'{bw}.name' must be a non-empty string.")
            raw = block.get("input")
            if raw is not None and not isinstance(raw, Mapping | str):
                raise OptionError(f"{bw}.input", f"'{bw}.input' must be an object.")
            names[call_id] = name
            calls.append(
                {
                    "id": call_id,
                    "function": {
                        "index": len(calls),
                        "name": name,
                        "arguments": parse_arguments(raw),
                    },
                }
            )
        elif kind != "redacted_thinking":  # Claude's encrypted reasoning: nothing to replay
            raise OptionError(
                f"{bw}.type",
                f"Unsupported content block type {kind!r} in "
                f"'{bw}'; an assistant message may hold text, "
                "thinking, redacted_thinking or tool_use blocks.",
            )
    message: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts)}
    if thinking:
        message["thinking"] = "\n".join(thinking)
    if calls:
        message["tool_calls"] = calls
    return message
