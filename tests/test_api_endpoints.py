"""Completions, embeddings, models, n > 1, JSON schema and images through the openai SDK."""

from __future__ import annotations

import base64
import struct
from typing import Any

import openai
import pytest
from aiohttp import web

from api.core.images import is_public
from tests.conftest import auth_headers, create_test_key, read_openai_error
from tests.fake_ollama import FakeModel, FakeOllama, fake_vector

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwAD"
    "hgGAWjR9awAAAABJRU5ErkJggg=="
)


async def _sdk(client: Any, **key: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=str(client.make_url("/v1")),
        api_key=create_test_key(client.app, **key),
        max_retries=0,
    )


@pytest.fixture
async def sdk(make_gateway: Any) -> Any:
    client = await make_gateway()
    sdk = await _sdk(client)
    yield sdk
    await sdk.close()


async def test_completions_non_stream_with_echo_and_logprobs(
    sdk: Any, fake_ollama: FakeOllama
) -> None:
    resp = await sdk.completions.create(
        model="llama3.2", prompt="hi there", echo=True, logprobs=2, max_tokens=50
    )
    choice = resp.choices[0]
    assert resp.object == "text_completion" and resp.id.startswith("cmpl-")
    assert resp.system_fingerprint == "fp_ollama_0.33.0"
    assert choice.text == "hi thereEcho: hi there"
    assert choice.logprobs.tokens == ["Echo:", " hi", " there"]
    assert choice.logprobs.text_offset == [8, 13, 16]
    assert choice.logprobs.top_logprobs[0] == {"Echo:": -0.25, "alt1": -3.0}
    assert choice.finish_reason == "stop"
    assert resp.usage.prompt_tokens == 2 and resp.usage.completion_tokens == 3
    sent = fake_ollama.last("/api/generate")
    assert sent["logprobs"] is True and sent["top_logprobs"] == 2
    assert sent["options"] == {"num_predict": 50}


async def test_completions_prompt_list_stream_and_length(sdk: Any, fake_ollama: FakeOllama) -> None:
    stream = await sdk.completions.create(
        model="llama3.2",
        prompt=["a b c", "d"],
        max_tokens=2,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    texts: dict[int, str] = {}
    finish: dict[int, str] = {}
    for c in chunks[:-1]:
        for ch in c.choices:
            texts[ch.index] = texts.get(ch.index, "") + ch.text
            if ch.finish_reason:
                finish[ch.index] = ch.finish_reason
    assert texts == {0: "Echo: a", 1: "Echo: d"}
    assert finish == {0: "length", 1: "stop"}
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 4


async def test_completions_suffix(sdk: Any, fake_ollama: FakeOllama) -> None:
    resp = await sdk.completions.create(
        model="hf.co/org/coder:Q4_K_M", prompt="def f(", suffix="return x"
    )
    assert resp.choices[0].text == "Echo: def f( [before return x]"
    assert fake_ollama.last("/api/generate")["suffix"] == "return x"


async def test_embeddings_float_and_base64(sdk: Any, fake_ollama: FakeOllama) -> None:
    resp = await sdk.embeddings.create(model="all-minilm", input=["a", "b c"], dimensions=4)
    assert [d.index for d in resp.data] == [0, 1]
    assert resp.data[1].embedding == pytest.approx(fake_vector("b c", 4))
    assert resp.usage.prompt_tokens == 3 and resp.usage.total_tokens == 3
    assert fake_ollama.last("/api/embed") == {
        "model": "all-minilm:latest",
        "input": ["a", "b c"],
        "dimensions": 4,
    }
    # The SDK asks for base64 by default when numpy is absent or decodes it itself.
    b64 = await sdk.embeddings.create(model="all-minilm", input="a", encoding_format="base64")
    raw = b64.data[0].embedding
    if isinstance(raw, str):
        raw = list(struct.unpack(f"<{len(base64.b64decode(raw)) // 4}f", base64.b64decode(raw)))
    assert raw == pytest.approx(fake_vector("a", 8), rel=1e-6)


async def test_embeddings_token_input_is_400(make_gateway: Any) -> None:
    client = await make_gateway()
    h = auth_headers(create_test_key(client.app))
    resp = await client.post(
        "/v1/embeddings", json={"model": "all-minilm", "input": [[1, 2]]}, headers=h
    )
    err = await read_openai_error(resp, 400, "invalid_request_error", "input")
    assert "Token" in err["message"]


async def test_models_list_and_get(make_gateway: Any, fake_ollama: FakeOllama) -> None:
    client = await make_gateway("models:\n  qwen3:8b:\n    display_name: Thinker\n")
    sdk = await _sdk(client)
    models = (await sdk.models.list()).data
    ids = [m.id for m in models]
    assert ids == [
        "llama3.2:latest",
        "Thinker",
        "llava:7b",
        "all-minilm:latest",
        "hf.co/org/coder:Q4_K_M",
    ]
    thinker = models[1].model_dump()
    assert thinker["context_length"] == 40960
    assert thinker["capabilities"] == ["completion", "tools", "thinking"]
    assert thinker["owned_by"] == "library" and thinker["object"] == "model"
    got = await sdk.models.retrieve("hf.co/org/coder:Q4_K_M")
    assert got.id == "hf.co/org/coder:Q4_K_M" and got.owned_by == "hf.co"
    assert (await sdk.models.retrieve("thinker")).model_dump()["context_length"] == 40960
    with pytest.raises(openai.NotFoundError):
        await sdk.models.retrieve("nope")
    await sdk.close()


async def test_models_filtered_by_key_and_empty_list(
    make_gateway: Any, fake_ollama: FakeOllama
) -> None:
    client = await make_gateway()
    limited = await _sdk(client, models=["llama*"])
    assert [m.id for m in (await limited.models.list()).data] == ["llama3.2:latest"]
    fake_ollama.models.clear()
    client2 = await make_gateway()
    h = auth_headers(create_test_key(client2.app))
    resp = await client2.get("/v1/models", headers=h)
    assert await resp.json() == {"object": "list", "data": []}
    await limited.close()


async def test_new_model_found_on_cache_miss(make_gateway: Any, fake_ollama: FakeOllama) -> None:
    client = await make_gateway()
    sdk = await _sdk(client)
    await sdk.models.list()
    fake_ollama.models.append(FakeModel("fresh:1b"))
    resp = await sdk.chat.completions.create(
        model="fresh:1b", messages=[{"role": "user", "content": "x"}]
    )
    assert resp.choices[0].message.content == "Echo: x"
    await sdk.close()


async def test_n_choices_fan_out(sdk: Any, fake_ollama: FakeOllama) -> None:
    resp = await sdk.chat.completions.create(
        model="llama3.2", n=3, seed=10, messages=[{"role": "user", "content": "x y"}]
    )
    assert [c.index for c in resp.choices] == [0, 1, 2]
    assert all(c.message.content == "Echo: x y" for c in resp.choices)
    assert resp.usage.prompt_tokens == 2 and resp.usage.completion_tokens == 9
    seeds = sorted(b["options"]["seed"] for b in fake_ollama.bodies("/api/chat"))
    assert seeds == [10, 11, 12]
    stream = await sdk.chat.completions.create(
        model="llama3.2", n=2, stream=True, messages=[{"role": "user", "content": "z"}]
    )
    texts = ["", ""]
    async for c in stream:
        for ch in c.choices:
            texts[ch.index] += ch.delta.content or ""
    assert texts == ["Echo: z", "Echo: z"]


async def test_json_schema_response_format(sdk: Any, fake_ollama: FakeOllama) -> None:
    schema = {"type": "object", "properties": {"echo": {"type": "string"}}}
    resp = await sdk.chat.completions.create(
        model="llama3.2",
        messages=[{"role": "user", "content": "x"}],
        response_format={"type": "json_schema", "json_schema": {"name": "e", "schema": schema}},
    )
    assert resp.choices[0].message.content == '{"echo": "x"}'
    assert fake_ollama.last("/api/chat")["format"] == schema


@pytest.fixture
async def image_server(aiohttp_server: Any) -> Any:
    async def png(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 5000, content_type="image/png")

    async def hop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/a.png")

    app = web.Application()
    app.router.add_get("/a.png", png)
    app.router.add_get("/big.png", big)
    app.router.add_get("/hop", hop)
    return await aiohttp_server(app)


def _image_msg(url: str) -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what?"},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        }
    ]


async def test_images_data_url_and_http_url(
    make_gateway: Any, fake_ollama: FakeOllama, image_server: Any
) -> None:
    client = await make_gateway(image_allow_private=True, image_max_bytes=1000)
    sdk = await _sdk(client)
    data_url = "data:image/webp;base64," + base64.b64encode(PNG).decode()
    for url in (data_url, str(image_server.make_url("/a.png")), str(image_server.make_url("/hop"))):
        await sdk.chat.completions.create(model="llava:7b", messages=_image_msg(url))
        sent = fake_ollama.last("/api/chat")["messages"][0]
        assert sent == {
            "role": "user",
            "content": "what?",
            "images": [base64.b64encode(PNG).decode()],
        }
    with pytest.raises(openai.BadRequestError, match="larger than 1000 bytes"):
        await sdk.chat.completions.create(
            model="llava:7b", messages=_image_msg(str(image_server.make_url("/big.png")))
        )
    await sdk.close()


@pytest.mark.parametrize(
    "host", ["127.0.0.1:{port}", "10.1.2.3", "169.254.169.254", "localhost:{port}", "[::1]:{port}"]
)
async def test_ssrf_guard_refuses_private_addresses(
    make_gateway: Any, image_server: Any, host: str
) -> None:
    client = await make_gateway()
    sdk = await _sdk(client)
    url = f"http://{host.format(port=image_server.port)}/a.png"
    with pytest.raises(openai.BadRequestError) as info:
        await sdk.chat.completions.create(model="llava:7b", messages=_image_msg(url))
    assert info.value.code == "invalid_image_url"
    assert "private" in info.value.message
    await sdk.close()


async def test_image_fetch_disabled(make_gateway: Any) -> None:
    client = await make_gateway(image_fetch=False)
    sdk = await _sdk(client)
    with pytest.raises(openai.BadRequestError) as info:
        await sdk.chat.completions.create(
            model="llava:7b", messages=_image_msg("https://example.com/a.png")
        )
    assert info.value.code == "image_fetch_disabled"
    await sdk.close()


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("192.168.1.1", False),
        ("172.16.0.1", False),
        ("169.254.169.254", False),
        ("::1", False),
        ("fe80::1", False),
        ("0.0.0.0", False),
        ("::ffff:127.0.0.1", False),
        ("100.64.0.1", False),
        ("224.0.0.1", False),
        # IPv6 forms that embed an IPv4 address are judged by that address
        ("::127.0.0.1", False),
        ("::10.0.0.1", False),
        ("64:ff9b::7f00:1", False),
        ("64:ff9b::a9fe:a9fe", False),
        ("64:ff9b::808:808", True),
        ("2002:7f00:1::", False),
        ("2002:c0a8:101::1", False),
        ("2002:808:808::1", True),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b:1::808:808", False),
        ("fec0::1", False),
    ],
)
def test_is_public(address: str, public: bool) -> None:
    assert is_public(address) is public


async def test_model_removed_upstream_is_404_and_refreshes(
    make_gateway: Any, fake_ollama: FakeOllama
) -> None:
    client = await make_gateway()
    sdk = await _sdk(client)
    await sdk.models.list()
    removed = fake_ollama.models.pop(0)  # llama3.2 disappears from Ollama
    with pytest.raises(openai.NotFoundError):
        await sdk.chat.completions.create(
            model="llama3.2", messages=[{"role": "user", "content": "x"}]
        )
    ids = [m.id for m in (await sdk.models.list()).data]
    assert removed.name not in ids and "qwen3:8b" in ids
    await sdk.close()


async def test_failed_show_falls_back_to_tags_and_is_not_retried_each_time(
    make_gateway: Any, fake_ollama: FakeOllama
) -> None:
    fake_ollama.models[1].show_status = 500
    client = await make_gateway()
    sdk = await _sdk(client)
    for _ in range(3):
        resp = await sdk.chat.completions.create(
            model="qwen3:8b", reasoning_effort="low", messages=[{"role": "user", "content": "x"}]
        )
        assert resp.choices[0].message.content == "Echo: x"
    # Capabilities came from /api/tags, so think was kept for this thinking model.
    assert fake_ollama.last("/api/chat")["think"] == "low"
    shows = [b for b in fake_ollama.bodies("/api/show") if b["model"] == "qwen3:8b"]
    assert len(shows) == 1
    await sdk.close()
