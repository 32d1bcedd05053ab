"""Native /api/chat lines -> OpenAI chat.completion and chat.completion.chunk (pure).

`ChoiceTranslator` is a per-choice state machine: `feed(line)` turns each native NDJSON line
into the chunk `choices[]` entries it yields, as the line arrives (no buffering), while also
accumulating the whole message for the non-streaming answer (`choice()`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from api.core.wire import encode_json, random_id

FINGERPRINT = "fp_ollama"


def fingerprint(version: str | None) -> str:
    """The system_fingerprint: `fp_ollama_<version>` once the server's version is known."""
    return f"{FINGERPRINT}_{version}" if version else FINGERPRINT


def completion_id(prefix: str = "chatcmpl") -> str:
    """A unique id such as chatcmpl-<32 hex> (128 random bits; ids need not be secret)."""
    return random_id(prefix)


def call_id() -> str:
    """A tool call id in OpenAI's style: call_<24 hex>."""
    return "call_" + uuid.uuid4().hex[:24]


def usage_of(final: Mapping[str, Any] | None) -> dict[str, Any]:
    """OpenAI usage from a native final line; missing counts are 0."""
    final = final or {}
    prompt = _count(final.get("prompt_eval_count"))
    completion = _count(final.get("eval_count"))
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    cached = final.get("prompt_eval_cached_count")
    if isinstance(cached, int) and not isinstance(cached, bool):
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return usage


def merge_usage(usages: list[dict[str, Any]]) -> dict[str, Any]:
    """Usage of n choices of one prompt: the prompt counted once, completions added."""
    prompt = max((u["prompt_tokens"] for u in usages), default=0)
    completion = sum(u["completion_tokens"] for u in usages)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _count(value: Any) -> int:
    """A token count, 0 when missing or malformed."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def finish_reason(done_reason: Any, made_calls: bool) -> str:
    """done_reason -> finish_reason: length kept, stop with calls -> tool_calls, else stop."""
    if done_reason == "length":
        return "length"
    return "tool_calls" if made_calls else "stop"


@dataclass
class ChoiceTranslator:
    """Translates one upstream stream into one OpenAI choice, chunk by chunk."""

    index: int = 0
    reasoning_mode: str = "reasoning_content"
    tool_choice: str = "auto"
    parallel_tool_calls: bool = True
    logprobs: bool = False
    forced_function: str | None = None
    started: bool = False
    done: bool = False
    final: dict[str, Any] | None = None
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    logprob_items: list[Any] = field(default_factory=list)
    # Characters as Ollama sent them (before any inline <think> rewriting), to split
    # eval_count into reasoning and answer tokens.
    thinking_chars: int = 0
    answer_chars: int = 0
    _think_open: bool = False
    _seen_calls: set[str] = field(default_factory=set)
    _held: list[str] = field(default_factory=list)

    def feed(self, line: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Chunk choices for one native line (the finish chunk too when it is the last)."""
        message = line.get("message")
        if (
            self.started
            and type(message) is dict
            and len(message) == 2
            and len(line) <= 4
            and not line.get("done")
            and not self.forced_function
            and not self._think_open
        ):
            # Fast path for the common line: only role and a piece of content.
            text = message.get("content")
            if type(text) is str:
                if not text:
                    return []
                self.answer_chars += len(text)
                self.content.append(text)
                return [
                    {
                        "index": self.index,
                        "delta": {"content": text},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ]
        message = message if isinstance(message, Mapping) else {}
        text = _str(message.get("content"))
        thinking = _str(message.get("thinking"))
        calls = self._new_calls(message.get("tool_calls"))
        raw_logprobs = line.get("logprobs")
        logprobs: list[Any] = raw_logprobs if isinstance(raw_logprobs, list) else []
        done = bool(line.get("done"))
        self.thinking_chars += len(thinking)
        self.answer_chars += len(text) + sum(len(c["name"]) + len(c["arguments"]) for c in calls)
        self.logprob_items.extend(logprobs)
        if self.forced_function and text:
            self._held.append(text)  # held until the end: it may become the call's arguments
            text = ""
        if self.reasoning_mode == "inline":
            text = self._inline(thinking, text, bool(calls) or bool(self._held) or done)
            thinking = ""
        if thinking:
            self.reasoning.append(thinking)
        if done and self.forced_function:
            text, calls = self._resolve_forced(text, calls)
        if text:
            self.content.append(text)
        out: list[dict[str, Any]] = []
        if thinking and self.reasoning_mode != "hidden":
            out.append(
                self._choice(
                    self._reasoning_delta(thinking), logprobs if not (text or calls) else None
                )
            )
        if text or calls or (logprobs and not thinking):
            delta: dict[str, Any] = {}
            if text or not calls:
                delta["content"] = text
            if calls:
                delta["tool_calls"] = [self._call_delta(c) for c in calls]
            out.append(self._choice(delta, logprobs or None))
        if not self.started:
            if not out:
                out.append(self._choice({"content": ""}, None))
            out[0]["delta"] = {"role": "assistant", **out[0]["delta"]}
            self.started = True
        if done:
            self.done = True
            self.final = dict(line)
            out.append(
                {
                    "index": self.index,
                    "delta": {},
                    "logprobs": None,
                    "finish_reason": self.finish_reason(),
                }
            )
        return out

    def _resolve_forced(
        self, text: str, calls: list[dict[str, Any]]
    ) -> tuple[str, list[dict[str, Any]]]:
        """At the end of a named tool_choice answer: turn held JSON into the call."""
        held = "".join(self._held)
        self._held.clear()
        if not self.calls and held.strip():
            try:
                args = json.loads(held)
            except json.JSONDecodeError:
                args = None
            if isinstance(args, dict):
                call = {
                    "index": 0,
                    "id": call_id(),
                    "name": self.forced_function,
                    "arguments": json.dumps(args, ensure_ascii=False),
                }
                self.calls.append(call)
                return text, [*calls, call]
        return text + held, calls

    def finish_reason(self) -> str:
        """The finish_reason for this choice."""
        return finish_reason((self.final or {}).get("done_reason"), bool(self.calls))

    def usage(self) -> dict[str, Any]:
        """Usage from the final line."""
        return usage_of(self.final)

    def reasoning_tokens(self) -> int:
        """Tokens spent thinking: exact when the answer is all thinking or none, else split
        by the share of characters (Ollama reports one eval_count for both)."""
        if not self.thinking_chars:
            return 0
        completion = int(self.usage()["completion_tokens"])
        return round(completion * self.thinking_chars / (self.thinking_chars + self.answer_chars))

    def choice(self) -> dict[str, Any]:
        """The accumulated choice of a non-streaming chat.completion."""
        text = "".join(self.content)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if self.calls and not text else text,
        }
        thinking = "".join(self.reasoning)
        if thinking and self.reasoning_mode != "hidden":
            message.update(self._reasoning_delta(thinking))
        if self.calls:
            message["tool_calls"] = [
                {k: v for k, v in self._call_delta(c).items() if k != "index"} for c in self.calls
            ]
        return {
            "index": self.index,
            "message": message,
            "logprobs": {"content": self.logprob_items} if self.logprobs else None,
            "finish_reason": self.finish_reason(),
        }

    # -- helpers --------------------------------------------------------------------------
    def _choice(self, delta: dict[str, Any], logprobs: list[Any] | None) -> dict[str, Any]:
        return {
            "index": self.index,
            "delta": delta,
            "logprobs": {"content": logprobs} if logprobs else None,
            "finish_reason": None,
        }

    def _reasoning_delta(self, text: str) -> dict[str, Any]:
        if self.reasoning_mode == "reasoning":
            return {"reasoning": text}
        if self.reasoning_mode == "both":
            return {"reasoning_content": text, "reasoning": text}
        return {"reasoning_content": text}

    def _inline(self, thinking: str, text: str, closing: bool) -> str:
        """Wrap thinking into content as <think>…</think>, opened and closed across lines."""
        out = ""
        if thinking:
            out += thinking if self._think_open else "<think>" + thinking
            self._think_open = True
        if self._think_open and (text or closing):
            out += "</think>"
            self._think_open = False
        return out + text

    def _new_calls(self, raw: Any) -> list[dict[str, Any]]:
        """Calls on this line not emitted before, after tool_choice/parallel filtering."""
        if not isinstance(raw, list) or self.tool_choice == "none":
            return []
        fresh: list[dict[str, Any]] = []
        for call in raw:
            fn = call.get("function") if isinstance(call, Mapping) else None
            if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
                continue
            args = fn.get("arguments")
            arguments = (
                args
                if isinstance(args, str)
                else json.dumps(args if args is not None else {}, ensure_ascii=False)
            )
            cid = call.get("id") if isinstance(call.get("id"), str) and call["id"] else None
            key = cid or f"{fn['name']}\0{arguments}\0{len(self.calls) + len(fresh)}"
            if key in self._seen_calls:
                continue  # each call is emitted exactly once
            if not self.parallel_tool_calls and (self.calls or fresh):
                continue
            self._seen_calls.add(key)
            fresh.append(
                {
                    "index": len(self.calls) + len(fresh),
                    "id": cid or call_id(),
                    "name": fn["name"],
                    "arguments": arguments,
                }
            )
        self.calls.extend(fresh)
        return fresh

    @staticmethod
    def _call_delta(call: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "index": call["index"],
            "id": call["id"],
            "type": "function",
            "function": {"name": call["name"], "arguments": call["arguments"]},
        }


def _str(value: Any) -> str:
    """A string field, '' when missing."""
    return value if isinstance(value, str) else ""


class ChunkEncoder:
    """Encodes the SSE frames of one stream; the constant envelope is encoded once."""

    def __init__(
        self,
        cid: str,
        created: int,
        model: str,
        include_usage: bool,
        system_fingerprint: str = FINGERPRINT,
    ) -> None:
        head = json.dumps(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": system_fingerprint,
            },
            ensure_ascii=False,
        )
        self._head = b"data: " + head[:-1].encode() + b', "choices": ['
        self._tail = b'], "usage": null}\n\n' if include_usage else b"]}\n\n"
        self.envelope = (cid, created, model)

    def frame(self, choice: dict[str, Any]) -> bytes:
        """The `data:` frame of a chunk with one choice."""
        return self._head + encode_json(choice).encode() + self._tail


def chunk(
    cid: str,
    created: int,
    model: str,
    choices: list[dict[str, Any]],
    include_usage: bool,
    usage: dict[str, Any] | None = None,
    system_fingerprint: str = FINGERPRINT,
) -> dict[str, Any]:
    """A chat.completion.chunk envelope (usage:null on ordinary chunks when usage is asked)."""
    out: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": system_fingerprint,
        "choices": choices,
    }
    if include_usage:
        out["usage"] = usage
    return out


def completion(
    cid: str,
    created: int,
    model: str,
    choices: list[dict[str, Any]],
    usage: dict[str, Any],
    system_fingerprint: str = FINGERPRINT,
) -> dict[str, Any]:
    """A chat.completion object."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": system_fingerprint,
        "choices": choices,
        "usage": usage,
    }


def to_chat_completion(
    lines: Sequence[Mapping[str, Any]], model: str, reasoning_mode: str = "reasoning_content"
) -> dict[str, Any]:
    """A whole native response (all lines) -> chat.completion (used by tests and tools)."""
    tr = ChoiceTranslator(reasoning_mode=reasoning_mode)
    for line in lines:
        tr.feed(line)
    return completion(completion_id(), int(time.time()), model, [tr.choice()], tr.usage())
