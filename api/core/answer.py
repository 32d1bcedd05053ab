"""Native /api/chat lines -> protocol-neutral answer events (pure; no I/O).

`AnswerDecoder` is what every non-chat-completions protocol reads an Ollama answer through
(Responses, Anthropic Messages): `feed(line)` returns the events of one native line as they
arrive, in order, while it accumulates the whole answer for non-streaming replies. It applies
the tool-choice rules of `api.core.tools` on the way out:
- tool_choice "none": calls the model makes anyway are discarded;
- parallel_tool_calls false: only the first call is kept;
- a forced (named) function: text is held back until the end; if the model made no native
  call, JSON text becomes the arguments of a synthesized call to that function.
`stop_sequences`, when given, are matched here (not by Ollama, which would strip them and
report the same done_reason as a natural end): the text is cut before the match, `stopped`
names the sequence, and the caller closes the upstream.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from api.core.wire import random_id

THINKING, TEXT, CALL = "thinking", "text", "call"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call: id, name and the arguments as a JSON object string."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Event:
    """A piece of the answer: kind THINKING or TEXT with `text`, or CALL with `call`."""

    kind: str
    text: str = ""
    call: ToolCall | None = None


def count(value: Any) -> int:
    """A token count from a native line, 0 when missing or malformed."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def arguments_json(args: Any) -> str:
    """Native call arguments (an object, or already a string) as a JSON string."""
    if isinstance(args, str):
        return args
    return json.dumps(args if args is not None else {}, ensure_ascii=False)


@dataclass
class AnswerDecoder:
    """Decodes one native answer stream (or one aggregated answer) into events."""

    tool_choice: str = "auto"
    parallel_tool_calls: bool = True
    forced_function: str | None = None
    stop_sequences: Sequence[str] = ()
    call_prefix: str = "call_"
    done: bool = False
    stopped: str | None = None  # the stop sequence that ended the answer
    final: dict[str, Any] | None = None
    text: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    pieces: int = 0  # native lines with content: about one token each
    thinking_chars: int = 0
    answer_chars: int = 0
    _seen: set[str] = field(default_factory=set)
    _held: list[str] = field(default_factory=list)
    _tail: str = ""  # text that may be the start of a stop sequence

    def feed(self, line: Mapping[str, Any]) -> list[Event]:
        """The events of one native line (nothing more once the answer is done)."""
        if self.done:
            return []
        message = line.get("message")
        message = message if isinstance(message, Mapping) else {}
        raw_text, raw_thinking = message.get("content"), message.get("thinking")
        text: str = raw_text if isinstance(raw_text, str) else ""
        thinking: str = raw_thinking if isinstance(raw_thinking, str) else ""
        calls = self._new_calls(message.get("tool_calls"))
        finished = bool(line.get("done"))
        if text or thinking:
            self.pieces += 1
        self.thinking_chars += len(thinking)
        self.answer_chars += len(text) + sum(len(c.name) + len(c.arguments) for c in calls)
        out: list[Event] = []
        if thinking:
            self.thinking.append(thinking)
            out.append(Event(THINKING, thinking))
        if self.forced_function and text:
            self._held.append(text)  # it may become the call's arguments
            text = ""
        if self.stop_sequences and text:
            text = self._match_stop(text, finished)
        elif self.stop_sequences and finished and self._tail:
            text, self._tail = self._tail, ""
        if finished and self.forced_function:
            text, calls = self._resolve_forced(text, calls)
        if text:
            self.text.append(text)
            out.append(Event(TEXT, text))
        out.extend(Event(CALL, call=c) for c in calls)
        if self.stopped is not None:
            self.done = True
            self.final = dict(line) if finished else None
        elif finished:
            self.done = True
            self.final = dict(line)
        return out

    # -- results --------------------------------------------------------------------------
    @property
    def done_reason(self) -> str:
        """stop | length | stop_sequence | tool_calls (a native "stop" with calls)."""
        if self.stopped is not None:
            return "stop_sequence"
        if (self.final or {}).get("done_reason") == "length":
            return "length"
        return "tool_calls" if self.calls else "stop"

    @property
    def prompt_tokens(self) -> int:
        """Prompt tokens Ollama reported (0 when the answer was cut before its final line)."""
        return count((self.final or {}).get("prompt_eval_count"))

    @property
    def completion_tokens(self) -> int:
        """Completion tokens: Ollama's count, or the pieces streamed when it was cut."""
        if self.final is None:
            return self.pieces
        return count(self.final.get("eval_count"))

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens served from Ollama's cache, when it says."""
        return count((self.final or {}).get("prompt_eval_cached_count"))

    def reasoning_tokens(self) -> int:
        """Tokens spent thinking: split from one eval_count by the share of characters."""
        if not self.thinking_chars:
            return 0
        total = self.thinking_chars + self.answer_chars
        return round(self.completion_tokens * self.thinking_chars / total)

    def full_text(self) -> str:
        """The whole answer text."""
        return "".join(self.text)

    def full_thinking(self) -> str:
        """The whole reasoning text."""
        return "".join(self.thinking)

    # -- helpers --------------------------------------------------------------------------
    def _match_stop(self, text: str, finished: bool) -> str:
        """Text safe to emit now; cut at the first stop sequence (then `stopped` is set)."""
        buffer = self._tail + text
        hits = [(buffer.find(s), s) for s in self.stop_sequences if s and s in buffer]
        if hits:
            at, seq = min(hits)
            self.stopped = seq
            self._tail = ""
            return buffer[:at]
        if finished:
            self._tail = ""
            return buffer
        # Hold back the longest suffix that could still grow into a stop sequence.
        keep = 0
        for seq in self.stop_sequences:
            for n in range(min(len(seq) - 1, len(buffer)), keep, -1):
                if seq.startswith(buffer[-n:]):
                    keep = n
                    break
        self._tail = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep]

    def _resolve_forced(self, text: str, calls: list[ToolCall]) -> tuple[str, list[ToolCall]]:
        """At the end of a forced-function answer: turn held JSON text into the call."""
        held = "".join(self._held)
        self._held.clear()
        if not self.calls and held.strip():
            try:
                args = json.loads(held)
            except json.JSONDecodeError:
                args = None
            if isinstance(args, dict) and self.forced_function:
                call = ToolCall(
                    random_id(self.call_prefix, "", 96),
                    self.forced_function,
                    json.dumps(args, ensure_ascii=False),
                )
                self.calls.append(call)
                return text, [*calls, call]
        return text + held, calls

    def _new_calls(self, raw: Any) -> list[ToolCall]:
        """Calls on this line not seen before, after tool_choice/parallel filtering."""
        if not isinstance(raw, list) or self.tool_choice == "none":
            return []
        fresh: list[ToolCall] = []
        for call in raw:
            fn = call.get("function") if isinstance(call, Mapping) else None
            if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
                continue
            arguments = arguments_json(fn.get("arguments"))
            cid = call.get("id") if isinstance(call.get("id"), str) and call["id"] else None
            key = cid or f"{fn['name']}\0{arguments}\0{len(self.calls) + len(fresh)}"
            if key in self._seen:
                continue  # each call is emitted exactly once
            if not self.parallel_tool_calls and (self.calls or fresh):
                continue
            self._seen.add(key)
            fresh.append(
                ToolCall(cid or random_id(self.call_prefix, "", 96), fn["name"], arguments)
            )
        self.calls.extend(fresh)
        return fresh
