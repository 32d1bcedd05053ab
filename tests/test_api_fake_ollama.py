"""The fake Ollama itself behaves as the wire doc says (so gateway tests can trust it)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from tests.fake_ollama import FakeOllama, Script, text_script, tool_call


async def _lines(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> list[Any]:
    async with session.post(url, json=body) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/x-ndjson"
        return [json.loads(line) async for line in resp.content if line.strip()]


async def test_default_chat_echo_streams_words(fake_ollama: FakeOllama) -> None:
    async with aiohttp.ClientSession() as s:
        lines = await _lines(
            s,
            fake_ollama.url + "/api/chat",
            {"model": "llama3.2", "messages": [{"role": "user", "content": "say hi"}]},
        )
    assert [ln["message"]["content"] for ln in lines] == ["Echo:", " say", " hi", ""]
    assert [ln["done"] for ln in lines] == [False, False, False, True]
    assert lines[-1]["done_reason"] == "stop"
    assert lines[-1]["prompt_eval_count"] == 2 and lines[-1]["eval_count"] == 3
    assert all(ln["model"] == "llama3.2" for ln in lines)
    assert fake_ollama.last("/api/chat")["messages"][0]["content"] == "say hi"


async def test_default_chat_thinks_and_aggregates(fake_ollama: FakeOllama) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            fake_ollama.url + "/api/chat",
            json={
                "model": "qwen3:8b",
                "stream": False,
                "messages": [{"role": "user", "content": "x"}],
            },
        ) as resp,
    ):
        body = await resp.json()
    assert body["message"] == {
        "role": "assistant",
        "content": "Echo: x",
        "thinking": "Thinking about: x",
    }
    assert body["done"] is True


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"model": "nope", "messages": []}, 404, "model 'nope' not found"),
        (
            {"model": "llama3.2", "think": True, "messages": []},
            400,
            '"llama3.2" does not support thinking',
        ),
        (
            {"model": "llava:7b", "tools": [{"type": "function"}], "messages": []},
            400,
            "llava:7b does not support tools",
        ),
        (
            {"model": "llama3.2", "options": {"num_ctx": "8192"}, "messages": []},
            500,
            'option "num_ctx" must be of type integer',
        ),
        (
            {"model": "llama3.2", "options": {"stop": "x"}, "messages": []},
            500,
            'option "stop" must be of type array',
        ),
        (
            {
                "model": "llama3.2",
                "messages": [{"role": "user", "content": "", "images": ["data:x"]}],
            },
            400,
            "illegal base64 data at input byte 4",
        ),
    ],
)
async def test_ollama_like_errors(
    fake_ollama: FakeOllama, body: dict[str, Any], status: int, error: str
) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.post(fake_ollama.url + "/api/chat", json=body) as resp,
    ):
        assert resp.status == status
        assert await resp.json() == {"error": error}


async def test_scripted_error_status_with_headers(fake_ollama: FakeOllama) -> None:
    fake_ollama.push("chat", Script(status=503, error="server busy", headers={"Retry-After": "7"}))
    async with aiohttp.ClientSession() as s:
        async with s.post(fake_ollama.url + "/api/chat", json={"model": "llama3.2"}) as resp:
            assert resp.status == 503
            assert resp.headers["Retry-After"] == "7"
        # One-shot: the next request gets the default reply again.
        lines = await _lines(
            s, fake_ollama.url + "/api/chat", {"model": "llama3.2", "messages": []}
        )
    assert lines[-1]["done_reason"] == "load"


async def test_script_tool_calls_and_missing_metrics(fake_ollama: FakeOllama) -> None:
    fake_ollama.push(
        "chat",
        Script(
            lines=[
                {
                    "message": {
                        "content": "",
                        "thinking": "hmm",
                        "tool_calls": [tool_call("f", {"a": 1})],
                    }
                },
                {"message": {"content": ""}, "done": True, "tool_calls_note": 1},
            ],
            done_reason=None,
            metrics={},
        ),
    )
    async with aiohttp.ClientSession() as s:
        lines = await _lines(s, fake_ollama.url + "/api/chat", {"model": "qwen3:8b"})
    assert len(lines) == 2
    assert lines[0]["message"]["tool_calls"][0]["function"]["name"] == "f"
    assert lines[1]["done"] is True and "eval_count" not in lines[1]


async def test_mid_stream_error_line_then_close(fake_ollama: FakeOllama) -> None:
    fake_ollama.push(
        "chat",
        Script(
            lines=[
                {"message": {"content": "Yes"}},
                {"error": "runner crashed"},
                {"message": {"content": "never sent"}},
            ]
        ),
    )
    async with aiohttp.ClientSession() as s:
        seen = await _lines(s, fake_ollama.url + "/api/chat", {"model": "llama3.2"})
    # Like Ollama: the error line ends the body; no done line follows.
    assert len(seen) == 2 and seen[-1] == {"error": "runner crashed"}


async def test_dropped_connection_is_a_broken_body(fake_ollama: FakeOllama) -> None:
    fake_ollama.push("chat", text_script("a", "b", drop=True))
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ClientPayloadError):
            async with s.post(fake_ollama.url + "/api/chat", json={"model": "llama3.2"}) as resp:
                async for _ in resp.content:
                    pass


async def test_slow_stream_notices_client_disconnect(fake_ollama: FakeOllama) -> None:
    fake_ollama.push("chat", text_script(*["tok"] * 100, delay=0.05))
    async with aiohttp.ClientSession() as s:
        resp = await s.post(fake_ollama.url + "/api/chat", json={"model": "llama3.2"})
        await resp.content.readline()
        resp.close()
    await fake_ollama.wait_disconnect(timeout=3)
    assert fake_ollama.disconnects == 1


async def test_tags_show_embed_generate(fake_ollama: FakeOllama) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(fake_ollama.url + "/api/tags") as resp:
            tags = await resp.json()
        async with s.post(fake_ollama.url + "/api/show", json={"model": "qwen3:8b"}) as resp:
            show = await resp.json()
        async with s.post(
            fake_ollama.url + "/api/embed",
            json={"model": "all-minilm", "input": ["a", "b c"], "dimensions": 4},
        ) as resp:
            embed = await resp.json()
        gen = await _lines(
            s,
            fake_ollama.url + "/api/generate",
            {"model": "llama3.2", "prompt": "hi there", "logprobs": True, "top_logprobs": 2},
        )
    assert [m["name"] for m in tags["models"]][:2] == ["llama3.2:latest", "qwen3:8b"]
    assert show["model_info"]["qwen3.context_length"] == 40960
    assert show["capabilities"] == ["completion", "tools", "thinking"]
    assert len(embed["embeddings"]) == 2 and len(embed["embeddings"][0]) == 4
    assert abs(sum(v * v for v in embed["embeddings"][0]) - 1) < 1e-9
    assert embed["prompt_eval_count"] == 3
    assert "".join(ln["response"] for ln in gen) == "Echo: hi there"
    assert len(gen[0]["logprobs"][0]["top_logprobs"]) == 2


async def test_script_delay_is_per_line(fake_ollama: FakeOllama) -> None:
    fake_ollama.push("chat", text_script("a", "b", delay=0.05))
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with aiohttp.ClientSession() as s:
        lines = await _lines(s, fake_ollama.url + "/api/chat", {"model": "llama3.2"})
    assert len(lines) == 3
    assert loop.time() - start >= 0.1


async def test_make_gateway_fixture_points_at_the_fake(
    make_gateway: Any, fake_ollama: FakeOllama
) -> None:
    from appkeys import REGISTRY

    client = await make_gateway("auth: keys\n", image_allow_private=True)
    registry = client.app[REGISTRY]
    assert registry.setting("ollama_url") == fake_ollama.url
    assert registry.setting("image_allow_private") is True
    async with client.get("/healthz") as resp:
        assert resp.status == 200
