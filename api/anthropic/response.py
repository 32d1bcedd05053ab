"""Decoded native answers -> Anthropic Messages objects and SSE event bytes (pure; no I/O).

The answer side reads Ollama through `api.core.answer.AnswerDecoder` (built by
`MessagesPlan.decoder()`, with `toolu_` call ids); `message_object` is the non-streaming
reply and `MessageStream` writes the events of a streaming one.

Decisions:
- Blocks come in Anthropic's order: thinking, text, then one `tool_use` per call (a stream
  opens a new block whenever the kind changes). An answer with no block at all gets one
  empty text block, so `content[0]` exists, streamed or not.
- A thinking block's `signature` is base64 of the SHA-256 of its text: deterministic and
  opaque, so clients that require one and send it back are satisfied. It authenticates
  nothing (anyone can compute it), and the request side never checks it.
- `thinking` mode: "show" (the default), "omit" (Anthropic's `display: "omitted"`: blocks
  with empty text and the signature), or "drop" (no thinking blocks).
- A call id Ollama made (`call_…`) is given the `toolu_` prefix, since clients expect it.
- stop_reason: end_turn, max_tokens, stop_sequence (with `stop_sequence` set) or tool_use.
- usage: Anthropic's `input_tokens` excludes cache reads, so Ollama's cached prompt tokens
  are moved from `input_tokens` to `cache_read_input_tokens`. A stream's `message_start`
  carries the caller's count (an estimate, before Ollama has said); its `message_delta`
  repeats Ollama's final count when there is one (the SDK takes the later, cumulative value).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from api.anthropic.errors import error_payload
from api.core.answer import CALL, TEXT, THINKING, AnswerDecoder, Event, ToolCall
from api.core.content import parse_arguments
from api.core.wire import encode_json, random_id

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_calls": "tool_use",
}
TOOL_ID_PREFIX = "toolu_"


def message_id() -> str:
    """A message id such as msg_<24 hex>."""
    return random_id("msg_", "", 96)


def signature(thinking: str) -> str:
    """The opaque, deterministic, non-secret signature of a thinking block."""
    return base64.b64encode(hashlib.sha256(thinking.encode()).digest()).decode()


def tool_use_block(call: ToolCall) -> dict[str, Any]:
    """A call as a tool_use block, with a `toolu_` id and `input` as an object."""
    cid = call.id if call.id.startswith(TOOL_ID_PREFIX) else TOOL_ID_PREFIX + call.id
    return {
        "type": "tool_use",
        "id": cid,
        "name": call.name,
        "input": parse_arguments(call.arguments),
    }


def stop_fields(decoder: AnswerDecoder) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) for a decoded answer."""
    reason = STOP_REASONS[decoder.done_reason]
    return reason, decoder.stopped if reason == "stop_sequence" else None


def usage(input_tokens: int, output_tokens: int, cached: int = 0) -> dict[str, int]:
    """Anthropic usage: the prompt's cached tokens are reported apart from `input_tokens`."""
    cached = min(cached, input_tokens)
    return {
        "input_tokens": input_tokens - cached,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def message_object(
    *,
    mid: str,
    model_label: str,
    decoder: AnswerDecoder,
    input_tokens: int,
    output_tokens: int,
    thinking: str = "show",
) -> dict[str, Any]:
    """The non-streaming reply: a whole `message` object."""
    content: list[dict[str, Any]] = []
    reasoning = decoder.full_thinking()
    if reasoning and thinking != "drop":
        shown = reasoning if thinking == "show" else ""
        content.append({"type": "thinking", "thinking": shown, "signature": signature(reasoning)})
    text = decoder.full_text()
    if text:
        content.append({"type": "text", "text": text})
    content.extend(tool_use_block(call) for call in decoder.calls)
    reason, sequence = stop_fields(decoder)
    return {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model_label,
        "content": content or [{"type": "text", "text": ""}],
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage(input_tokens, output_tokens, decoder.cached_tokens),
    }


def _frame(event: str, data: Mapping[str, Any]) -> str:
    """One SSE event: `event: TYPE`, `data: JSON` and a blank line."""
    return f"event: {event}\ndata: {encode_json(data)}\n\n"


PING = _frame("ping", {"type": "ping"}).encode()


class MessageStream:
    """The SSE bytes of one streamed message: start, feed(events)..., then finish or fail."""

    def __init__(self, mid: str, model_label: str, *, thinking: str = "show") -> None:
        self.mid = mid
        self.model_label = model_label
        self.thinking = thinking
        self.index = -1  # the index of the open (or last) content block
        self.open: str | None = None  # THINKING, TEXT or CALL while a block is open
        self._reasoning: list[str] = []  # the open thinking block's text, for its signature

    def start(self, input_tokens: int) -> bytes:
        """message_start with the message skeleton, then a ping."""
        message: dict[str, Any] = {
            "id": self.mid,
            "type": "message",
            "role": "assistant",
            "model": self.model_label,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage(input_tokens, 0),
        }
        return (
            _frame("message_start", {"type": "message_start", "message": message}).encode() + PING
        )

    def feed(self, events: Iterable[Event]) -> bytes:
        """The events for a batch of answer events (b"" when there is nothing to send)."""
        out: list[str] = []
        for event in events:
            kind = event.kind
            if kind == TEXT:
                if self.open != TEXT:
                    out.append(self._begin(TEXT, {"type": "text", "text": ""}))
                out.append(self._delta("text_delta", "text", event.text))
            elif kind == THINKING:
                if self.thinking == "drop":
                    continue
                if self.open != THINKING:
                    block = {"type": "thinking", "thinking": "", "signature": ""}
                    out.append(self._begin(THINKING, block))
                self._reasoning.append(event.text)
                if self.thinking == "show":
                    out.append(self._delta("thinking_delta", "thinking", event.text))
            elif kind == CALL and event.call is not None:
                block = tool_use_block(event.call)
                out.append(self._begin(CALL, {**block, "input": {}}))
                out.append(
                    self._delta("input_json_delta", "partial_json", encode_json(block["input"]))
                )
        return "".join(out).encode()

    def finish(self, decoder: AnswerDecoder, output_tokens: int) -> bytes:
        """Close the open block, then message_delta (stop reason, usage) and message_stop."""
        out = [self._end()]
        if self.index < 0:  # nothing was said: one empty text block, as in message_object
            out += [self._begin(TEXT, {"type": "text", "text": ""}), self._end()]
        reason, sequence = stop_fields(decoder)
        counts: dict[str, int] = {"output_tokens": output_tokens}
        if decoder.prompt_tokens:
            counts = usage(decoder.prompt_tokens, output_tokens, decoder.cached_tokens)
        delta = {"stop_reason": reason, "stop_sequence": sequence}
        out.append(
            _frame("message_delta", {"type": "message_delta", "delta": delta, "usage": counts})
        )
        out.append(_frame("message_stop", {"type": "message_stop"}))
        return "".join(out).encode()

    @staticmethod
    def ping() -> bytes:
        """A keep-alive `ping` event."""
        return PING

    @staticmethod
    def fail(message: str, type: str = "api_error") -> bytes:
        """An `event: error` (api_error or overloaded_error) that ends a failed stream."""
        return _frame("error", error_payload(type, message)).encode()

    # -- helpers --------------------------------------------------------------------------
    def _begin(self, kind: str, block: Mapping[str, Any]) -> str:
        """Close the open block and start the next one."""
        closing = self._end()
        self.index += 1
        self.open = kind
        start = {"type": "content_block_start", "index": self.index, "content_block": block}
        return closing + _frame("content_block_start", start)

    def _end(self) -> str:
        """content_block_stop for the open block (a thinking block gets its signature first)."""
        if self.open is None:
            return ""
        out = ""
        if self.open == THINKING:
            out = self._delta("signature_delta", "signature", signature("".join(self._reasoning)))
            self._reasoning.clear()
        self.open = None
        return out + _frame(
            "content_block_stop", {"type": "content_block_stop", "index": self.index}
        )

    def _delta(self, kind: str, key: str, value: str) -> str:
        """A content_block_delta for the open block (built directly: one per token)."""
        return (
            'event: content_block_delta\ndata: {"type": "content_block_delta", "index": '
            f'{self.index}, "delta": {{"type": "{kind}", "{key}": {encode_json(value)}}}}}\n\n'
        )
