"""End-to-end chat completions through the official openai SDK (async and sync)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

from appkeys import USAGE
from tests.conftest import create_test_key
from tests.fake_ollama import FakeOllama, Script, text_script, tool_call


@pytest.fixture
async def sdk(make_gateway: Any) -> Any:
    """An async OpenAI client against a fresh gateway (key allowed every model)."""
    client = await make_gateway()
    secret = create_test_key(client.app)
    sdk = openai.AsyncOpenAI(
        base_url=str(client.make_url("/v1")), api_key=secret, max_retries=0, timeout=10
    )
    sdk.gateway = client
    yield sdk
    await sdk.close()


async def test_plain_chat_non_stream(sdk: Any, fake_ollama: FakeOllama) -> None:
    resp = await sdk.chat.completions.create(
        model="llama3.2", messages=[{"role": "user", "content": "say hi"}]
    )
    assert resp.object == "chat.completion"
    assert resp.id.startswith("chatcmpl-") and len(resp.id) == len("chatcmpl-") + 32
    assert resp.model == "llama3.2"
    assert resp.system_fingerprint == "fp_ollama_0.33.0"  # from the fake's /api/version
    assert resp.choices[0].message.content == "Echo: say hi"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens == 2 and resp.usage.completion_tokens == 3
    assert resp.usage.total_tokens == 5
    sent = fake_ollama.last("/api/chat")
    # Nothing injected: no sampling defaults, no think, the canonical model name.
    assert sent == {
        "model": "llama3.2:latest",
        "stream": False,
        "messages": [{"role": "user", "content": "say hi"}],
    }
    record = sdk.gateway.app[USAGE].recent[-1]
    assert (record.status, record.prompt_tokens, record.completion_tokens) == (200, 2, 3)
    assert record.ollama_model == "llama3.2:latest" and record.model == "llama3.2"


async def test_plain_chat_stream_chunks(sdk: Any, fake_ollama: FakeOllama) -> None:
    stream = await sdk.chat.completions.create(
        model="llama3.2",
        messages=[{"role": "user", "content": "a b"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:] if c.choices)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: a b"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 5
    assert all(c.usage is None for c in chunks[:-1])


async def test_reasoning_modes(make_gateway: Any, fake_ollama: FakeOllama) -> None:
    yaml = (
        "models:\n  qwen3:8b:\n    reasoning_output: both\n"
        "  llama3.2:\n    reasoning_output: inline\n"
    )
    client = await make_gateway(yaml)
    secret = create_test_key(client.app)
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=secret, max_retries=0)
    fake_ollama.push(
        "chat",
        text_script("17", " x 23", thinking=("The user", " wants")),
        text_script("391", thinking=("hmm",)),
    )
    resp = await sdk.chat.completions.create(
        model="qwen3:8b", messages=[{"role": "user", "content": "q"}]
    )
    msg = resp.choices[0].message.model_dump()
    assert msg["content"] == "17 x 23"
    assert msg["reasoning_content"] == msg["reasoning"] == "The user wants"
    # inline: thinking wrapped into the content, opened and closed across chunks.
    fake_ollama.models[0].capabilities.append("thinking")
    stream = await sdk.chat.completions.create(
        model="llama3.2", messages=[{"role": "user", "content": "q"}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == "<think>hmm</think>391"
    await sdk.close()


async def test_tools_multi_turn(sdk: Any, fake_ollama: FakeOllama) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get weather",
                "parameters": {
                    "type": "object",
                    "required": ["city"],
                    "properties": {
                        "city": {"type": "string"},
                        "days": {"type": "integer", "minimum": 1},
                    },
                },
            },
        }
    ]
    fake_ollama.push(
        "chat",
        Script(
            lines=[
                {
                    "message": {
                        "content": "",
                        "thinking": "call it",
                        "tool_calls": [tool_call("get_weather", {"city": "Tokyo"}, id=None)],
                    }
                }
            ]
        ),
    )
    first = await sdk.chat.completions.create(
        model="qwen3:8b", tools=tools, messages=[{"role": "user", "content": "Weather in Tokyo?"}]
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.id.startswith("call_") and len(call.id) == 29
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Tokyo"}
    sent_tools = fake_ollama.last("/api/chat")["tools"]
    assert sent_tools[0]["function"]["parameters"]["properties"]["days"] == {
        "type": "integer",
        "description": "minimum 1",
    }

    await sdk.chat.completions.create(
        model="qwen3:8b",
        tools=tools,
        messages=[
            {"role": "user", "content": "Weather in Tokyo?"},
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": "call it",
                "tool_calls": [call.model_dump()],
            },
            {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 22}'},
        ],
    )
    sent = fake_ollama.last("/api/chat")["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": "",
        "thinking": "call it",
        "tool_calls": [
            {
                "id": call.id,
                "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Tokyo"}},
            }
        ],
    }
    assert sent[2] == {
        "role": "tool",
        "content": '{"temp_c": 22}',
        "tool_call_id": call.id,
        "tool_name": "get_weather",
    }


async def test_streamed_tool_calls_on_final_line(sdk: Any, fake_ollama: FakeOllama) -> None:
    fake_ollama.push(
        "chat",
        Script(
            lines=[
                {
                    "message": {
                        "content": "",
                        "tool_calls": [
                            tool_call("a", {"x": 1}, id="c1"),
                            tool_call("b", {}, id="c2", index=1),
                        ],
                    },
                    "done": True,
                    "done_reason": "stop",
                    "eval_count": 9,
                }
            ]
        ),
    )
    stream = await sdk.chat.completions.create(
        model="llama3.2",
        messages=[{"role": "user", "content": "go"}],
        stream=True,
        tools=[
            {"type": "function", "function": {"name": "a"}},
            {"type": "function", "function": {"name": "b"}},
        ],
    )
    chunks = [c async for c in stream]
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert [(tc.index, tc.id, tc.function.name, tc.function.arguments) for tc in calls] == [
        (0, "c1", "a", '{"x": 1}'),
        (1, "c2", "b", "{}"),
    ]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_mid_stream_error_raises_api_error(sdk: Any, fake_ollama: FakeOllama) -> None:
    fake_ollama.push(
        "chat", Script(lines=[{"message": {"content": "Yes"}}, {"error": "runner crashed"}])
    )
    stream = await sdk.chat.completions.create(
        model="llama3.2", messages=[{"role": "user", "content": "q"}], stream=True
    )
    got: list[str] = []
    with pytest.raises(openai.APIError, match="runner crashed"):
        async for c in stream:
            got.append(c.choices[0].delta.content or "")
    assert got == ["Yes"]
    record = sdk.gateway.app[USAGE].recent[-1]
    assert record.error_code == "upstream_error"


async def test_dropped_connection_raises_api_error(sdk: Any, fake_ollama: FakeOllama) -> None:
    fake_ollama.push("chat", text_script("a", "b", drop=True))
    stream = await sdk.chat.completions.create(
        model="llama3.2", messages=[{"role": "user", "content": "q"}], stream=True
    )
    with pytest.raises(openai.APIError, match="Ollama"):
        async for _ in stream:
            pass


async def test_client_disconnect_closes_upstream(sdk: Any, fake_ollama: FakeOllama) -> None:
    fake_ollama.push("chat", text_script(*["tok "] * 200, delay=0.05))
    stream = await sdk.chat.completions.create(
        model="llama3.2", messages=[{"role": "user", "content": "q"}], stream=True
    )
    async for _ in stream:
        break
    await stream.close()
    await fake_ollama.wait_disconnect(timeout=5)
    for _ in range(100):
        recent = sdk.gateway.app[USAGE].recent
        if recent and recent[-1].cancelled:
            break
        await asyncio.sleep(0.02)
    assert recent[-1].cancelled is True


async def test_sync_sdk(make_gateway: Any, fake_ollama: FakeOllama) -> None:
    client = await make_gateway()
    secret = create_test_key(client.app)

    def call() -> tuple[str, str]:
        sync = openai.OpenAI(
            base_url=str(client.make_url("/v1")), api_key=secret, max_retries=0, timeout=10
        )
        plain = sync.chat.completions.create(
            model="llama3.2", messages=[{"role": "user", "content": "sync"}]
        )
        streamed = "".join(
            c.choices[0].delta.content or ""
            for c in sync.chat.completions.create(
                model="llama3.2", stream=True, messages=[{"role": "user", "content": "sync"}]
            )
        )
        sync.close()
        return plain.choices[0].message.content or "", streamed

    assert await asyncio.to_thread(call) == ("Echo: sync", "Echo: sync")


async def test_content_logging_only_when_on(make_gateway: Any, fake_ollama: FakeOllama) -> None:
    for on in (False, True):
        client = await make_gateway(content_logging=on)
        secret = create_test_key(client.app)
        resp = await client.post(
            "/v1/chat/completions",
            json={"model": "llama3.2", "messages": [{"role": "user", "content": "secret plan"}]},
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert resp.status == 200
        record = client.app[USAGE].recent[-1]
        if on:
            assert "secret plan" in record.prompt_text
            assert record.response_text == "Echo: secret plan"
        else:
            assert record.prompt_text is None and record.response_text is None


async def test_tool_choice_required_nudges_and_none_discards(
    sdk: Any, fake_ollama: FakeOllama
) -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    await sdk.chat.completions.create(
        model="llama3.2",
        tools=tools,
        tool_choice="required",
        messages=[{"role": "user", "content": "x"}],
    )
    sent = fake_ollama.last("/api/chat")
    assert sent["messages"][0]["role"] == "system" and "must" in sent["messages"][0]["content"]
    assert [t["function"]["name"] for t in sent["tools"]] == ["f"]
    # "none": no tools sent, and a call the model makes anyway is discarded.
    fake_ollama.push(
        "chat", Script(lines=[{"message": {"content": "text", "tool_calls": [tool_call("f", {})]}}])
    )
    resp = await sdk.chat.completions.create(
        model="llama3.2",
        tools=tools,
        tool_choice="none",
        messages=[{"role": "user", "content": "x"}],
    )
    assert "tools" not in fake_ollama.last("/api/chat")
    assert resp.choices[0].message.tool_calls is None
    assert resp.choices[0].message.content == "text"
    assert resp.choices[0].finish_reason == "stop"


async def test_parameters_and_extras_forwarded(sdk: Any, fake_ollama: FakeOllama) -> None:
    await sdk.chat.completions.create(
        model="llama3.2",
        messages=[{"role": "user", "content": "x"}],
        temperature=0.2,
        max_completion_tokens=40,
        stop="END",
        seed=1,
        extra_body={
            "num_ctx": 8192,
            "top_k": 20,
            "keep_alive": "10m",
            "options": {"repeat_penalty": 1.1},
        },
    )
    sent = fake_ollama.last("/api/chat")
    assert sent["options"] == {
        "repeat_penalty": 1.1,
        "top_k": 20,
        "num_ctx": 8192,
        "temperature": 0.2,
        "seed": 1,
        "stop": ["END"],
        "num_predict": 40,
    }
    assert sent["keep_alive"] == "10m"


async def test_length_finish_reason(sdk: Any, fake_ollama: FakeOllama) -> None:
    resp = await sdk.chat.completions.create(
        model="llama3.2", max_tokens=1, messages=[{"role": "user", "content": "a b c"}]
    )
    assert resp.choices[0].finish_reason == "length"
    assert resp.choices[0].message.content == "Echo:"


WEATHER = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "required": ["city"],
                "properties": {"city": {"type": "string"}},
            },
        },
    },
    {"type": "function", "function": {"name": "other"}},
]


@pytest.mark.parametrize("stream", [False, True])
async def test_named_tool_choice_is_enforced_with_format(
    sdk: Any, fake_ollama: FakeOllama, stream: bool
) -> None:
    fake_ollama.push("chat", text_script('{"city":', ' "Oslo"}'))
    choice = {"type": "function", "function": {"name": "get_weather"}}
    messages = [{"role": "user", "content": "weather?"}]
    if stream:
        chunks = [
            c
            async for c in await sdk.chat.completions.create(
                model="llama3.2", tools=WEATHER, tool_choice=choice, messages=messages, stream=True
            )
        ]
        calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
        finish = chunks[-1].choices[0].finish_reason
        content = "".join(c.choices[0].delta.content or "" for c in chunks)
    else:
        resp = await sdk.chat.completions.create(
            model="llama3.2", tools=WEATHER, tool_choice=choice, messages=messages
        )
        calls = resp.choices[0].message.tool_calls
        finish = resp.choices[0].finish_reason
        content = resp.choices[0].message.content or ""
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Oslo"})
    ]
    assert finish == "tool_calls" and content == ""
    sent = fake_ollama.last("/api/chat")
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather"]
    assert sent["format"] == WEATHER[0]["function"]["parameters"]


async def test_required_tool_choice_retries_once(sdk: Any, fake_ollama: FakeOllama) -> None:
    fake_ollama.push(
        "chat",
        text_script("I would rather chat."),
        Script(lines=[{"message": {"content": "", "tool_calls": [tool_call("other", {})]}}]),
    )
    resp = await sdk.chat.completions.create(
        model="llama3.2",
        tools=WEATHER,
        tool_choice="required",
        messages=[{"role": "user", "content": "x"}],
    )
    assert resp.choices[0].message.tool_calls[0].function.name == "other"
    assert len(fake_ollama.bodies("/api/chat")) == 2
    # Both attempts are counted (the fake counts one token per scripted line).
    assert resp.usage.completion_tokens == 2
    fake_ollama.push("chat", text_script("no"), text_script("still no"))
    resp = await sdk.chat.completions.create(
        model="llama3.2",
        tools=WEATHER,
        tool_choice="required",
        messages=[{"role": "user", "content": "x"}],
    )
    assert resp.choices[0].message.content == "still no"
    assert resp.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("mode", "fields", "content"),
    [
        ("reasoning_content", {"reasoning_content": "Thinking about: q"}, "Echo: q"),
        ("reasoning", {"reasoning": "Thinking about: q"}, "Echo: q"),
        (
            "both",
            {"reasoning_content": "Thinking about: q", "reasoning": "Thinking about: q"},
            "Echo: q",
        ),
        ("inline", {}, "<think>Thinking about: q</think>Echo: q"),
        ("hidden", {}, "Echo: q"),
    ],
)
async def test_every_reasoning_mode_stream_and_not(
    make_gateway: Any, fake_ollama: FakeOllama, mode: str, fields: dict[str, str], content: str
) -> None:
    client = await make_gateway(reasoning_output=mode)
    sdk = openai.AsyncOpenAI(
        base_url=str(client.make_url("/v1")), api_key=create_test_key(client.app), max_retries=0
    )
    messages = [{"role": "user", "content": "q"}]
    resp = await sdk.chat.completions.create(model="qwen3:8b", messages=messages)
    extra = {
        k: v
        for k, v in resp.choices[0].message.model_dump().items()
        if k in ("reasoning_content", "reasoning") and v is not None
    }
    assert (resp.choices[0].message.content, extra) == (content, fields)
    got: dict[str, str] = {}
    async for c in await sdk.chat.completions.create(
        model="qwen3:8b", messages=messages, stream=True
    ):
        for key, value in c.choices[0].delta.model_dump().items():
            if key in ("content", "reasoning_content", "reasoning") and value:
                got[key] = got.get(key, "") + value
    assert got == {"content": content, **fields}
    await sdk.close()


async def test_drop_after_done_line_still_completes(sdk: Any, fake_ollama: FakeOllama) -> None:
    done = {"message": {"content": ""}, "done": True, "done_reason": "stop", "eval_count": 2}
    for _ in range(2):
        fake_ollama.push("chat", Script(lines=[{"message": {"content": "ok"}}, done], drop=True))
    stream = await sdk.chat.completions.create(
        model="llama3.2", messages=[{"role": "user", "content": "q"}], stream=True
    )
    assert "".join([c.choices[0].delta.content or "" async for c in stream]) == "ok"
    resp = await sdk.chat.completions.create(
        model="llama3.2", messages=[{"role": "user", "content": "q"}]
    )
    assert resp.choices[0].message.content == "ok"


@pytest.mark.parametrize("include_usage", [False, True])
async def test_raw_sse_frames_are_exactly_openais(
    make_gateway: Any, fake_ollama: FakeOllama, include_usage: bool
) -> None:
    """The wire bytes, not the SDK's view: keys of every chunk, usage:null only on request."""
    client = await make_gateway()
    secret = create_test_key(client.app)
    fake_ollama.push("chat", text_script("Hi", " there", thinking=("hm",)))
    body: dict[str, Any] = {
        "model": "qwen3:8b",
        "stream": True,
        "messages": [{"role": "user", "content": "x"}],
    }
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    resp = await client.post(
        "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"}
    )
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    raw = (await resp.read()).decode()
    assert raw.endswith("data: [DONE]\n\n")
    frames = [json.loads(f[len("data: ") :]) for f in raw.split("\n\n") if f.startswith("data: {")]
    envelope = {"id", "object", "created", "model", "system_fingerprint", "choices"}
    if include_usage:
        envelope.add("usage")
    assert all(set(f) == envelope for f in frames)
    assert all(
        f["object"] == "chat.completion.chunk"
        and f["model"] == "qwen3:8b"
        and f["system_fingerprint"] == "fp_ollama_0.33.0"
        for f in frames
    )
    *content, finish = [f for f in frames if f["choices"]]
    assert [f["choices"][0]["delta"] for f in content] == [
        {"role": "assistant", "reasoning_content": "hm"},
        {"content": "Hi"},
        {"content": " there"},
    ]
    assert finish["choices"] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    ]
    assert all(
        set(f["choices"][0]) == {"index", "delta", "logprobs", "finish_reason"} for f in content
    )
    if include_usage:
        assert all(f["usage"] is None for f in frames[:-1])
        assert frames[-1]["choices"] == [] and frames[-1]["usage"]["total_tokens"] > 0
    else:
        assert len(frames) == 4
