"""Every /v1 failure answers in OpenAI's error shape with a code, and is recorded once."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import openai
import pytest

from appkeys import REGISTRY, USAGE
from tests.conftest import auth_headers, create_test_key, read_openai_error
from tests.fake_ollama import FakeOllama, Script

CHAT = "/v1/chat/completions"
MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def gw(make_gateway: Any) -> Any:
    client = await make_gateway()
    client.secret = create_test_key(client.app)
    client.h = auth_headers(client.secret)
    return client


@pytest.mark.parametrize(
    ("headers", "word"),
    [
        ({}, "Missing"),
        ({"Authorization": "Bearer sk-nope-not-a-key"}, "Invalid"),
        ({"Authorization": "Basic abc"}, "Missing"),
    ],
)
async def test_401_invalid_api_key(gw: Any, headers: dict[str, str], word: str) -> None:
    resp = await gw.post(CHAT, json={"model": "llama3.2", "messages": MSG}, headers=headers)
    err = await read_openai_error(resp, 401, "invalid_api_key")
    assert word in err["message"] and "sk-nope" not in err["message"]
    assert gw.app[USAGE].recent[-1].status == 401


async def test_401_disabled_and_expired(gw: Any) -> None:
    disabled = create_test_key(gw.app, name="off", enabled=False)
    expired = create_test_key(gw.app, name="old", expires_at=1.0)
    for secret, word in ((disabled, "disabled"), (expired, "expired")):
        resp = await gw.post(
            CHAT, json={"model": "llama3.2", "messages": MSG}, headers=auth_headers(secret)
        )
        err = await read_openai_error(resp, 401, "invalid_api_key")
        assert word in err["message"]


@pytest.mark.parametrize("model", ["nope", "nope:latest", "LLAMA9"])
async def test_404_unknown_model(gw: Any, model: str) -> None:
    resp = await gw.post(CHAT, json={"model": model, "messages": MSG}, headers=gw.h)
    await read_openai_error(resp, 404, "model_not_found", "model")
    record = gw.app[USAGE].recent[-1]
    assert (record.status, record.error_code, record.model) == (404, "model_not_found", model)


async def test_display_name_access_checks_cover_every_name(
    make_gateway: Any, fake_ollama: FakeOllama
) -> None:
    yaml = "models:\n  qwen3:8b:\n    display_name: Thinker\n    enforce: {num_ctx: 4096}\n"
    client = await make_gateway(yaml)
    only_thinker = auth_headers(create_test_key(client.app, models=["thinker"]))
    other = auth_headers(create_test_key(client.app, models=["llama3.2"]))
    for name in ("Thinker", "thinker", "qwen3:8b", "QWEN3:8B"):
        resp = await client.post(
            CHAT, json={"model": name, "messages": MSG, "num_ctx": 99}, headers=only_thinker
        )
        assert resp.status == 200, await resp.text()
        # Reached by any name, the model gets the same enforced settings.
        assert fake_ollama.last("/api/chat")["options"] == {"num_ctx": 4096}
        resp = await client.post(CHAT, json={"model": name, "messages": MSG}, headers=other)
        await read_openai_error(resp, 404, "model_not_found")


async def test_disabled_model_is_not_found(make_gateway: Any) -> None:
    client = await make_gateway("models:\n  llama3.2:\n    enabled: false\n")
    h = auth_headers(create_test_key(client.app))
    resp = await client.post(CHAT, json={"model": "llama3.2", "messages": MSG}, headers=h)
    await read_openai_error(resp, 404, "model_not_found")
    resp = await client.get("/v1/models", headers=h)
    ids = [m["id"] for m in (await resp.json())["data"]]
    assert "llama3.2:latest" not in ids and "qwen3:8b" in ids


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (b"{not json", None, "invalid_json"),
        (b"", None, "invalid_json"),
        (b"[1]", None, "invalid_json"),
        (b"[" * 20000 + b"]" * 20000, None, "invalid_json"),
        (b'{"model": "llama3.2", "max_tokens": ' + b"1" * 5000 + b"}", None, "invalid_json"),
        (b'{"messages": []}', "model", "missing_required_parameter"),
        (b'{"model": 5, "messages": []}', "model", "invalid_type"),
        (b'{"model": "llama3.2"}', "messages", "invalid_request_error"),
        (
            b'{"model": "llama3.2", "messages": [{"role": "user", "content": "x"}], '
            b'"temperature": "hot"}',
            "temperature",
            "invalid_request_error",
        ),
        (
            b'{"model": "llama3.2", "messages": [{"role": "user", "content": "x"}], '
            b'"options": {"num_ctx": "8k"}}',
            "options.num_ctx",
            "invalid_request_error",
        ),
        (
            b'{"model": "llama3.2", "messages": [{"role": "user", "content": "x"}], "n": 0}',
            "n",
            "invalid_request_error",
        ),
        (
            b'{"model": "llava:7b", "messages": [{"role": "user", "content": "x"}], '
            b'"tools": [{"type": "function", "function": {"name": "f"}}]}',
            "tools",
            "invalid_request_error",
        ),
    ],
)
async def test_400_names_the_param(
    gw: Any, fake_ollama: FakeOllama, body: bytes, param: str | None, code: str
) -> None:
    resp = await gw.post(CHAT, data=body, headers={**gw.h, "Content-Type": "application/json"})
    await read_openai_error(resp, 400, code, param)
    assert fake_ollama.bodies("/api/chat") == []


async def test_413_body_too_large(make_gateway: Any) -> None:
    client = await make_gateway(max_body_bytes=1000)
    h = auth_headers(create_test_key(client.app))
    resp = await client.post(
        CHAT,
        json={"model": "llama3.2", "messages": [{"role": "user", "content": "x" * 5000}]},
        headers=h,
    )
    await read_openai_error(resp, 413, "request_too_large")


async def test_unknown_route_and_method(gw: Any) -> None:
    resp = await gw.post("/v1/nothing", json={}, headers=gw.h)
    await read_openai_error(resp, 404, "not_found")
    resp = await gw.get(CHAT, headers=gw.h)
    await read_openai_error(resp, 405, "method_not_allowed")


async def test_502_names_the_upstream_url(make_gateway: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    client = await make_gateway(ollama_url=url)
    resp = await client.post(
        CHAT,
        json={"model": "llama3.2", "messages": MSG},
        headers=auth_headers(create_test_key(client.app)),
    )
    err = await read_openai_error(resp, 502, "upstream_unreachable")
    assert url in err["message"]


@pytest.mark.parametrize("stream", [False, True])
async def test_503_passes_retry_after(gw: Any, fake_ollama: FakeOllama, stream: bool) -> None:
    fake_ollama.push("chat", Script(status=503, error="server busy", headers={"Retry-After": "7"}))
    resp = await gw.post(
        CHAT, json={"model": "llama3.2", "messages": MSG, "stream": stream}, headers=gw.h
    )
    await read_openai_error(resp, 503, "overloaded")
    assert resp.headers["Retry-After"] == "7"


async def test_upstream_500_is_502_and_capability_400_is_400(
    gw: Any, fake_ollama: FakeOllama
) -> None:
    fake_ollama.push("chat", Script(status=500, error="model runner has unexpectedly stopped"))
    resp = await gw.post(CHAT, json={"model": "llama3.2", "messages": MSG}, headers=gw.h)
    err = await read_openai_error(resp, 502, "upstream_error")
    assert "unexpectedly stopped" in err["message"]
    fake_ollama.push("chat", Script(status=400, error="bad thing"))
    resp = await gw.post(CHAT, json={"model": "llama3.2", "messages": MSG}, headers=gw.h)
    await read_openai_error(resp, 400, "upstream_rejected")


async def test_non_stream_mid_stream_error_is_502(gw: Any, fake_ollama: FakeOllama) -> None:
    fake_ollama.push("chat", Script(lines=[{"message": {"content": "a"}}, {"error": "oom"}]))
    resp = await gw.post(CHAT, json={"model": "llama3.2", "messages": MSG}, headers=gw.h)
    err = await read_openai_error(resp, 502, "upstream_error")
    assert "oom" in err["message"]
    # Not streamed upstream either, so a connection that drops gives no answer at all.
    fake_ollama.push("chat", Script(lines=[{"message": {"content": "a"}}], drop=True, done=False))
    resp = await gw.post(CHAT, json={"model": "llama3.2", "messages": MSG}, headers=gw.h)
    err = await read_openai_error(resp, 502, "upstream_error")
    assert "closed the connection" in err["message"] and fake_ollama.url in err["message"]


async def test_think_dropped_for_non_thinking_model(gw: Any, fake_ollama: FakeOllama) -> None:
    resp = await gw.post(
        CHAT,
        json={"model": "llama3.2", "messages": MSG, "think": True, "reasoning_effort": "high"},
        headers=gw.h,
    )
    assert resp.status == 200
    assert "think" not in fake_ollama.last("/api/chat")


async def test_request_id_echoed_and_recorded(gw: Any) -> None:
    resp = await gw.post(
        CHAT,
        json={"model": "llama3.2", "messages": MSG},
        headers={**gw.h, "X-Request-ID": "abc-123"},
    )
    assert resp.status == 200 and resp.headers["X-Request-ID"] == "abc-123"
    resp = await gw.post(CHAT, json={"model": "nope", "messages": MSG}, headers=gw.h)
    assert resp.status == 404 and len(resp.headers["X-Request-ID"]) >= 16
    records = gw.app[USAGE].recent
    assert records[-2].request_id == "abc-123"
    assert records[-1].request_id == resp.headers["X-Request-ID"]


async def test_one_record_per_request(gw: Any) -> None:
    before = len(gw.app[USAGE].recent)
    await gw.post(CHAT, json={"model": "llama3.2", "messages": MSG}, headers=gw.h)
    await gw.post(CHAT, json={"model": "llama3.2", "messages": MSG})
    await gw.post(CHAT, json={"model": "llama3.2", "messages": MSG, "stream": True}, headers=gw.h)
    assert len(gw.app[USAGE].recent) - before == 3
    key = next(iter(gw.app[REGISTRY].keys.values()))
    assert gw.app[USAGE].recent[-1].key_id == key.id


async def test_sdk_raises_typed_errors(gw: Any) -> None:
    sdk = openai.AsyncOpenAI(base_url=str(gw.make_url("/v1")), api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await sdk.chat.completions.create(model="llama3.2", messages=MSG)
    await sdk.close()
    sdk = openai.AsyncOpenAI(base_url=str(gw.make_url("/v1")), api_key=gw.secret, max_retries=0)
    with pytest.raises(openai.NotFoundError) as info:
        await sdk.chat.completions.create(model="nope", messages=MSG)
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        await sdk.chat.completions.create(
            model="llama3.2", messages=MSG, extra_body={"top_k": "many"}
        )
    assert bad.value.param == "top_k"
    await sdk.close()


async def test_admin_paths_are_untouched_by_v1_middleware(gw: Any) -> None:
    resp = await gw.get("/healthz")
    assert resp.status == 200 and (await resp.json())["status"] == "ok"


async def test_429_rate_limited_with_retry_after(make_gateway: Any) -> None:
    client = await make_gateway()
    h = auth_headers(create_test_key(client.app, rpm=1))
    ok = await client.post(CHAT, json={"model": "llama3.2", "messages": MSG}, headers=h)
    assert ok.status == 200
    resp = await client.post(CHAT, json={"model": "llama3.2", "messages": MSG}, headers=h)
    await read_openai_error(resp, 429, "rate_limit_exceeded")
    assert int(resp.headers["Retry-After"]) >= 1
    assert gw_record(client).status == 429


def gw_record(client: Any) -> Any:
    """The newest usage record."""
    return client.app[USAGE].recent[-1]


async def test_shutdown_ends_open_streams_with_error_frame(
    aiohttp_server: Any, fake_ollama: FakeOllama, tmp_path: Any
) -> None:
    import json

    import aiohttp

    from gateway import create_app
    from state.config import parse_config
    from tests.fake_ollama import text_script

    config = parse_config("", env={}).replace(
        ollama_url=fake_ollama.url, data_dir=str(tmp_path / "d"), auth="none"
    )
    server = await aiohttp_server(create_app(config))
    fake_ollama.push("chat", text_script(*["t "] * 500, delay=0.05))
    async with aiohttp.ClientSession() as session:
        resp = await session.post(
            server.make_url(CHAT), json={"model": "llama3.2", "messages": MSG, "stream": True}
        )
        assert resp.status == 200
        first = await resp.content.readline()
        assert first.startswith(b"data: ")
        closing = asyncio.ensure_future(server.close())
        frames = [line.decode().strip() async for line in resp.content if line.strip()]
        await closing
    assert json.loads(frames[-1][len("data: ") :])["error"]["code"] == "server_shutdown"
    assert "data: [DONE]" not in frames


async def test_lone_surrogates_are_recorded_safely(make_gateway: Any) -> None:
    client = await make_gateway(content_logging=True)
    h = {**auth_headers(create_test_key(client.app)), "Content-Type": "application/json"}
    resp = await client.post(CHAT, data=b'{"model": "x\\ud800", "messages": []}', headers=h)
    await read_openai_error(resp, 404, "model_not_found", "model")
    resp = await client.post(
        CHAT,
        headers=h,
        data=b'{"model": "llama3.2", "messages": [{"role": "user", "content": "a\\udc00b"}]}',
    )
    assert resp.status == 200
    records = client.app[USAGE].recent
    assert records[-2].model == "x?"
    assert "a?b" in records[-1].prompt_text
    for record in records[-2:]:
        for text in (record.model, record.prompt_text, record.response_text):
            (text or "").encode("utf-8")


@pytest.mark.parametrize(
    "header", [b"Authorization: Bearer sk-\xff\xfe", b"api-key: \xffsk", b"User-Agent: \xff\xfe"]
)
async def test_undecodable_header_bytes_are_a_401_and_recorded(gw: Any, header: bytes) -> None:
    reader, writer = await asyncio.open_connection(gw.host, gw.port)
    writer.write(
        b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + header + b"\r\n\r\n"
    )
    await writer.drain()
    raw = await reader.read()
    writer.close()
    await writer.wait_closed()
    assert raw.startswith(b"HTTP/1.1 401"), raw[:200]
    assert b"invalid_api_key" in raw and b"\\u00ff" not in raw
    record = gw.app[USAGE].recent[-1]
    assert record.status == 401
    (record.user_agent or "").encode("utf-8")


async def test_upstream_credentials_never_shown(make_gateway: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = await make_gateway(ollama_url=f"http://ops:hunter2-pw@127.0.0.1:{port}")
    h = auth_headers(create_test_key(client.app))
    for stream in (False, True):
        resp = await client.post(
            CHAT, json={"model": "llama3.2", "messages": MSG, "stream": stream}, headers=h
        )
        err = await read_openai_error(resp, 502, "upstream_unreachable")
        assert f"http://127.0.0.1:{port}" in err["message"]
        assert "hunter2" not in err["message"] and "ops@" not in err["message"]


@pytest.mark.parametrize("stream", [False, True])
async def test_read_timeout_applies(
    make_gateway: Any, fake_ollama: FakeOllama, stream: bool
) -> None:
    """Ollama silent for longer than read_timeout: a 504 before the answer, an error frame
    after it started; never a hang."""
    client = await make_gateway(read_timeout=0.3)
    secret = create_test_key(client.app)
    fake_ollama.push(
        "chat",
        Script(lines=[{"message": {"content": "a"}}, {"message": {"content": "b"}}], delay=1.0),
    )
    resp = await client.post(
        CHAT,
        json={"model": "llama3.2", "messages": MSG, "stream": stream},
        headers=auth_headers(secret),
    )
    if stream:
        assert resp.status == 200
        raw = (await resp.read()).decode()
        error = json.loads(raw.strip().split("data: ")[-1])["error"]
        assert error["code"] == "upstream_error" and "timed out" in error["message"]
    else:
        err = await read_openai_error(resp, 504, "upstream_timeout")
        assert fake_ollama.url in err["message"]
