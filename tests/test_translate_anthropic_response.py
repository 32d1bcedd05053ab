"""Table tests of the pure Anthropic Messages answer side: message objects, SSE events, errors."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse
from pydantic import TypeAdapter

from api.anthropic.errors import ERROR_TYPES, error_body
from api.anthropic.request import MessagesPlan
from api.anthropic.response import MessageStream, message_id, message_object
from api.core.answer import AnswerDecoder

EVENTS: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
FRAME = re.compile(r"event: ([a-z_]+)\ndata: (.*)")


def line(
    content: str = "", thinking: str | None = None, calls: Any = None, **extra: Any
) -> dict[str, Any]:
    """A native chat line."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking is not None:
        message["thinking"] = thinking
    if calls is not None:
        message["tool_calls"] = calls
    return {"model": "m", "message": message, "done": False, **extra}


def done(
    reason: str = "stop", prompt: int = 10, completion: int = 3, **extra: Any
) -> dict[str, Any]:
    final = line(done_reason=reason, prompt_eval_count=prompt, eval_count=completion, **extra)
    return {**final, "done": True}


def call(name: str, args: dict[str, Any], cid: str = "call_abc") -> dict[str, Any]:
    return {"id": cid, "function": {"index": 0, "name": name, "arguments": args}}


def sig(thinking: str) -> str:
    """The expected signature, computed independently: base64 of SHA-256."""
    return base64.b64encode(hashlib.sha256(thinking.encode()).digest()).decode()


def decoder(stop: list[str] | None = None, **kw: Any) -> AnswerDecoder:
    return MessagesPlan(native={}, stop_sequences=stop or [], **kw).decoder()


def usage(inp: int, out: int, cached: int = 0) -> dict[str, int]:
    return {
        "input_tokens": inp,
        "output_tokens": out,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def thinking(value: str, shown: str | None = None) -> dict[str, Any]:
    return {
        "type": "thinking",
        "thinking": value if shown is None else shown,
        "signature": sig(value),
    }


def tool_use(cid: str, name: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": cid, "name": name, "input": value}


def reply(content: list[Any], reason: str, seq: str | None = None, **u: int) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-local",
        "content": content,
        "stop_reason": reason,
        "stop_sequence": seq,
        "usage": usage(u.get("inp", 10), u.get("out", 3), u.get("cached", 0)),
    }


WEATHER = call("get_weather", {"city": "Paris"})
TEXT_LINES = [line("Hel"), line("lo"), done()]
THINK_LINES = [line("", "plan"), line("", " more"), line("Answer", ""), done()]
TOOL_LINES = [line("", "need weather"), line(calls=[WEATHER]), done()]
STOP_LINES = [line("abc EN"), line("D more"), done()]


@pytest.mark.parametrize(
    ("lines", "kw", "mode", "expected"),
    [
        (TEXT_LINES, {}, "show", reply([text("Hello")], "end_turn")),
        (THINK_LINES, {}, "show", reply([thinking("plan more"), text("Answer")], "end_turn")),
        (THINK_LINES, {}, "omit", reply([thinking("plan more", ""), text("Answer")], "end_turn")),
        (THINK_LINES, {}, "drop", reply([text("Answer")], "end_turn")),
        (
            TOOL_LINES,
            {},
            "show",
            reply(
                [
                    thinking("need weather"),
                    tool_use("toolu_call_abc", "get_weather", {"city": "Paris"}),
                ],
                "tool_use",
            ),
        ),
        (
            [line(calls=[call("f", {}, "toolu_01x"), call("g", {"a": [1]}, "call_2")]), done()],
            {},
            "show",
            reply(
                [tool_use("toolu_01x", "f", {}), tool_use("toolu_call_2", "g", {"a": [1]})],
                "tool_use",
            ),
        ),
        (
            [line(calls=[call("f", {}, "c1"), call("g", {}, "c2")]), done()],
            {"parallel_tool_calls": False},
            "show",
            reply([tool_use("toolu_c1", "f", {})], "tool_use"),
        ),
        ([line("Hel"), done("length")], {}, "show", reply([text("Hel")], "max_tokens")),
        (
            STOP_LINES,
            {"stop": ["END"]},
            "show",
            reply([text("abc ")], "stop_sequence", "END", inp=0, out=2),
        ),
        ([done()], {}, "show", reply([text("")], "end_turn")),
        ([line("", "only thinking"), done("length")], {}, "drop", reply([text("")], "max_tokens")),
        (
            [line("Hi"), done(prompt_eval_cached_count=4)],
            {},
            "show",
            reply([text("Hi")], "end_turn", inp=6, cached=4),
        ),
    ],
)
def test_message_object(
    lines: list[Any], kw: dict[str, Any], mode: str, expected: dict[str, Any]
) -> None:
    dec = decoder(**kw)
    for native in lines:
        dec.feed(native)
    obj = message_object(
        mid="msg_1",
        model_label="claude-local",
        decoder=dec,
        input_tokens=dec.prompt_tokens,
        output_tokens=dec.completion_tokens,
        thinking=mode,
    )
    assert obj == expected
    assert Message.model_validate(obj).model_dump(exclude_unset=True) == expected


def test_synthesized_ids() -> None:
    dec = decoder()
    dec.feed(line(calls=[{"function": {"name": "f", "arguments": {}}}]))
    dec.feed(done())
    obj = message_object(
        mid=message_id(), model_label="x", decoder=dec, input_tokens=1, output_tokens=1
    )
    assert re.fullmatch(r"msg_[0-9a-f]{24}", obj["id"])
    assert re.fullmatch(r"toolu_[0-9a-f]{24}", obj["content"][0]["id"])


def frames(data: bytes) -> list[tuple[str, Any]]:
    """SSE bytes -> [(event, data)]; every frame must be `event: X\\ndata: JSON` + blank line."""
    assert data.endswith(b"\n\n")
    parsed = [FRAME.fullmatch(chunk) for chunk in data.decode().split("\n\n")[:-1]]
    assert all(parsed)
    return [(m[1], json.loads(m[2])) for m in parsed]  # type: ignore[index]


def stream(
    lines: list[Any], dec: AnswerDecoder, mode: str = "show", fail: str | None = None
) -> bytes:
    """Drive a MessageStream as the handler does."""
    out = MessageStream("msg_1", "claude-local", thinking=mode)
    data = out.start(12)
    for native in lines:
        data += out.feed(dec.feed(native))
    return data + (out.fail(fail) if fail else out.finish(dec, dec.completion_tokens))


START = [
    (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-local",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": usage(12, 0),
            },
        },
    ),
    ("ping", {"type": "ping"}),
]


def block_start(index: int, block: dict[str, Any]) -> tuple[str, Any]:
    return (
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": block},
    )


def delta(index: int, kind: str, key: str, value: str) -> tuple[str, Any]:
    body = {"type": "content_block_delta", "index": index, "delta": {"type": kind, key: value}}
    return ("content_block_delta", body)


def block_stop(index: int) -> tuple[str, Any]:
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


def end(reason: str, seq: str | None = None, **u: Any) -> list[tuple[str, Any]]:
    message_delta = {
        "type": "message_delta",
        "delta": {"stop_reason": reason, "stop_sequence": seq},
        "usage": u or usage(10, 3),
    }
    return [("message_delta", message_delta), ("message_stop", {"type": "message_stop"})]


EMPTY_THINKING = {"type": "thinking", "thinking": "", "signature": ""}


@pytest.mark.parametrize(
    ("lines", "kw", "mode", "expected"),
    [
        (
            TEXT_LINES,
            {},
            "show",
            [
                *START,
                block_start(0, text("")),
                delta(0, "text_delta", "text", "Hel"),
                delta(0, "text_delta", "text", "lo"),
                block_stop(0),
                *end("end_turn"),
            ],
        ),
        (
            THINK_LINES,
            {},
            "show",
            [
                *START,
                block_start(0, EMPTY_THINKING),
                delta(0, "thinking_delta", "thinking", "plan"),
                delta(0, "thinking_delta", "thinking", " more"),
                delta(0, "signature_delta", "signature", sig("plan more")),
                block_stop(0),
                block_start(1, text("")),
                delta(1, "text_delta", "text", "Answer"),
                block_stop(1),
                *end("end_turn"),
            ],
        ),
        (
            THINK_LINES,
            {},
            "omit",
            [
                *START,
                block_start(0, EMPTY_THINKING),
                delta(0, "signature_delta", "signature", sig("plan more")),
                block_stop(0),
                block_start(1, text("")),
                delta(1, "text_delta", "text", "Answer"),
                block_stop(1),
                *end("end_turn"),
            ],
        ),
        (
            THINK_LINES,
            {},
            "drop",
            [
                *START,
                block_start(0, text("")),
                delta(0, "text_delta", "text", "Answer"),
                block_stop(0),
                *end("end_turn"),
            ],
        ),
        (
            [
                line("Checking."),
                *TOOL_LINES[1:2],
                line(calls=[call("get_time", {}, "call_t")]),
                done(),
            ],
            {},
            "show",
            [
                *START,
                block_start(0, text("")),
                delta(0, "text_delta", "text", "Checking."),
                block_stop(0),
                block_start(1, tool_use("toolu_call_abc", "get_weather", {})),
                delta(1, "input_json_delta", "partial_json", '{"city": "Paris"}'),
                block_stop(1),
                block_start(2, tool_use("toolu_call_t", "get_time", {})),
                delta(2, "input_json_delta", "partial_json", "{}"),
                block_stop(2),
                *end("tool_use"),
            ],
        ),
        (
            [line("Hel"), done("length", completion=1)],
            {},
            "show",
            [
                *START,
                block_start(0, text("")),
                delta(0, "text_delta", "text", "Hel"),
                block_stop(0),
                *end("max_tokens", **usage(10, 1)),
            ],
        ),
        (
            STOP_LINES,
            {"stop": ["END"]},
            "show",
            [
                *START,
                block_start(0, text("")),
                delta(0, "text_delta", "text", "abc "),
                block_stop(0),
                # the answer was cut before Ollama's final line: no prompt count to repeat
                *end("stop_sequence", "END", output_tokens=2),
            ],
        ),
        (
            [done(prompt_eval_cached_count=4)],
            {},
            "show",
            [*START, block_start(0, text("")), block_stop(0), *end("end_turn", **usage(6, 3, 4))],
        ),
    ],
)
def test_stream_events(
    lines: list[Any], kw: dict[str, Any], mode: str, expected: list[Any]
) -> None:
    events = frames(stream(lines, decoder(**kw), mode))
    assert events == expected
    assert all(event == data["type"] for event, data in events)
    validated = [EVENTS.validate_python(data) for event, data in events if event != "ping"]
    assert [v.type for v in validated] == [event for event, _ in events if event != "ping"]


@pytest.mark.parametrize("kind", ["api_error", "overloaded_error"])
def test_stream_failure(kind: str) -> None:
    out = MessageStream("msg_1", "claude-local")
    data = (
        out.start(12)
        + out.feed(decoder().feed(line("Hel")))
        + out.fail("Ollama closed the stream.", kind)
    )
    error = {"type": "error", "error": {"type": kind, "message": "Ollama closed the stream."}}
    expected = [
        *START,
        block_start(0, text("")),
        delta(0, "text_delta", "text", "Hel"),
        ("error", error),
    ]
    assert frames(data) == expected
    assert ErrorResponse.model_validate(error).error.type == kind
    assert frames(MessageStream.ping()) == [("ping", {"type": "ping"})]


def sdk_client(body: bytes) -> anthropic.Anthropic:
    """The real SDK, reading these bytes as the response to any request."""

    def respond(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    http = httpx2.Client(transport=httpx2.MockTransport(respond))
    return anthropic.Anthropic(api_key="sk-test", base_url="http://gw.test", http_client=http)


ASK: dict[str, Any] = {
    "model": "claude-local",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Hi"}],
}


@pytest.mark.parametrize(
    ("lines", "kw"),
    [
        (TEXT_LINES, {}),
        (THINK_LINES, {}),
        (TOOL_LINES, {}),
        ([line("Checking."), line(calls=[WEATHER, call("f", {"x": "y"}, "c2")]), done("stop")], {}),
        (STOP_LINES, {"stop": ["END"]}),
        ([done("length")], {}),
    ],
)
def test_sdk_reads_stream_as_object(lines: list[Any], kw: dict[str, Any]) -> None:
    """The SDK's own stream accumulator ends with the non-streaming object."""
    dec = decoder(**kw)
    body = stream(lines, dec)
    with sdk_client(body) as client, client.messages.stream(**ASK) as events:
        final = events.get_final_message()
    obj = message_object(
        mid="msg_1",
        model_label="claude-local",
        decoder=dec,
        input_tokens=dec.prompt_tokens or 12,
        output_tokens=dec.completion_tokens,
    )
    assert final.model_dump(exclude_none=True) == Message.model_validate(obj).model_dump(
        exclude_none=True
    )


def test_sdk_raises_on_error_event() -> None:
    out = MessageStream("msg_1", "claude-local")
    body = out.start(1) + out.fail("Ollama is busy; try again.", "overloaded_error")
    with (
        sdk_client(body) as client,
        pytest.raises(anthropic.APIStatusError, match="Ollama is busy"),
    ):
        list(client.messages.create(**ASK, stream=True))


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
        (599, "api_error"),
    ],
)
def test_error_body(status: int, kind: str) -> None:
    assert error_body(status, "nope") == {
        "type": "error",
        "error": {"type": kind, "message": "nope"},
    }


# request_too_large is documented by Anthropic but missing from the SDK's error union.
@pytest.mark.parametrize("status", sorted(set(ERROR_TYPES) - {413}))
def test_error_body_sdk(status: int) -> None:
    assert ErrorResponse.model_validate(error_body(status, "nope")).error.message == "nope"
