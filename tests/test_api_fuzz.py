"""No input makes /v1 answer 500 or hang: every field gets every kind of wrong value."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import assert_openai_error, auth_headers, create_test_key

ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    10**12,
    "",
    "x",
    [],
    {},
    [1],
    [None],
    [{}],
    ["x"],
    {"a": 1},
    {"type": 5},
    [{"type": "text"}],
]
BASE_CHAT = {"model": "qwen3:8b", "messages": [{"role": "user", "content": "hi"}]}
CHAT_FIELDS = [
    "model",
    "messages",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "seed",
    "stop",
    "max_tokens",
    "max_completion_tokens",
    "presence_penalty",
    "frequency_penalty",
    "n",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_effort",
    "reasoning",
    "think",
    "logprobs",
    "top_logprobs",
    "options",
    "keep_alive",
    "num_ctx",
    "truncate",
    "user",
]
MESSAGE_FIELDS = ["role", "content", "tool_calls", "tool_call_id", "name", "reasoning_content"]


def _check(status: int, body: Any) -> None:
    assert status in (200, 400, 404), (status, body)
    if status >= 400:
        assert_openai_error(body, status, body["error"]["code"])


@pytest.fixture
async def gw(make_gateway: Any) -> Any:
    client = await make_gateway()
    client.h = auth_headers(create_test_key(client.app))
    return client


@pytest.mark.parametrize("field", CHAT_FIELDS)
async def test_chat_fields(gw: Any, field: str) -> None:
    for value in ODD_VALUES:
        body = {**BASE_CHAT, field: value}
        resp = await gw.post("/v1/chat/completions", json=body, headers=gw.h)
        payload = await resp.json() if resp.content_type == "application/json" else None
        if resp.content_type == "text/event-stream":
            text = await resp.text()
            assert text.rstrip().endswith("data: [DONE]"), (field, value, text)
            continue
        _check(resp.status, payload)


@pytest.mark.parametrize("field", MESSAGE_FIELDS)
async def test_message_fields(gw: Any, field: str) -> None:
    for value in ODD_VALUES:
        for role in ("user", "assistant", "tool"):
            message = {"role": role, "content": "x", field: value}
            body = {**BASE_CHAT, "messages": [message]}
            resp = await gw.post("/v1/chat/completions", json=body, headers=gw.h)
            _check(resp.status, await resp.json())


@pytest.mark.parametrize(
    ("path", "base", "fields"),
    [
        (
            "/v1/completions",
            {"model": "llama3.2", "prompt": "x"},
            ["prompt", "suffix", "echo", "logprobs", "n", "stream", "stream_options", "max_tokens"],
        ),
        (
            "/v1/embeddings",
            {"model": "all-minilm", "input": "x"},
            ["input", "dimensions", "encoding_format", "options", "truncate", "keep_alive"],
        ),
    ],
)
async def test_other_endpoints(gw: Any, path: str, base: dict[str, Any], fields: list[str]) -> None:
    for field in fields:
        for value in ODD_VALUES:
            resp = await gw.post(path, json={**base, field: value}, headers=gw.h)
            if resp.content_type == "text/event-stream":
                assert (await resp.text()).rstrip().endswith("data: [DONE]")
                continue
            _check(resp.status, await resp.json())


NESTED_CONTENT: list[Any] = [
    [{"type": "image_url", "image_url": 5}],
    [{"type": "image_url", "image_url": {"url": 5}}],
    [{"type": "image_url", "image_url": {"url": "data:image/png;base64,"}}],
    [{"type": "input_audio", "input_audio": {"data": 5}}],
    [{"type": "input_audio"}],
    [{"type": "refusal", "refusal": 5}],
    [{"type": None}],
    [{"type": "text"}],
    ["plain", 5],
]
NESTED_TOOL_CALLS: list[Any] = [
    [{"function": {"name": "f", "arguments": 5}}],
    [{"id": 5, "function": {"name": "f"}}],
    [{"function": {"name": "f", "arguments": "[1,2]"}}],
    [5],
    [{"function": "f"}],
]
NESTED_SCHEMAS: list[Any] = [
    {"properties": 5},
    {"required": 5, "allOf": [{"required": ["a"]}]},
    {"properties": 5, "allOf": [{"properties": {"a": {}}}]},
    {"allOf": [5, None]},
    {"oneOf": 5},
    {"anyOf": [5]},
    {"$ref": 5},
    {"$ref": "#/$defs/missing"},
    {"$defs": 5, "properties": {"a": {"$ref": "#/$defs/x"}}},
    {"items": 5, "type": "array"},
    {"type": ["null"]},
    {"type": 5, "minimum": "x"},
    {"properties": {"a": 5}},
]


async def test_nested_values(gw: Any) -> None:
    bodies: list[dict[str, Any]] = []
    bodies += [{**BASE_CHAT, "messages": [{"role": "user", "content": c}]} for c in NESTED_CONTENT]
    bodies += [
        {**BASE_CHAT, "messages": [{"role": "assistant", "content": None, "tool_calls": t}]}
        for t in NESTED_TOOL_CALLS
    ]
    bodies += [
        {**BASE_CHAT, "tools": [{"type": "function", "function": {"name": "f", "parameters": p}}]}
        for p in NESTED_SCHEMAS
    ]
    for body in bodies:
        resp = await gw.post("/v1/chat/completions", json=body, headers=gw.h)
        _check(resp.status, await resp.json())
