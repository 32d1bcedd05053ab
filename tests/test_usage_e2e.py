"""Usage records of real /v1 requests: tokens as Ollama sent them, cancels, refusals, restarts."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp.test_utils import TestClient

from appkeys import USAGE
from state import usage_query
from state.usage import RequestRecord
from state.usage_query import UsageFilter
from tests.conftest import auth_headers, create_test_key
from tests.fake_ollama import FakeOllama, text_script

PASSWORD = "usage-e2e-pass-1"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}
METRICS = {
    "prompt_eval_count": 17,
    "eval_count": 9,
    "load_duration": 250_000_000,
    "eval_duration": 300_000_000,
    "prompt_eval_duration": 10_000_000,
    "total_duration": 600_000_000,
}


def sdk(client: TestClient, secret: str) -> openai.AsyncOpenAI:
    """The official SDK pointed at the gateway."""
    return openai.AsyncOpenAI(
        base_url=str(client.make_url("/v1")), api_key=secret, max_retries=0, timeout=10
    )


async def stored(client: TestClient, **filters: Any) -> list[dict[str, Any]]:
    """The rows in usage.db (after flushing the queue), newest first."""
    await client.app[USAGE].flush()
    page = await client.app[USAGE].read(usage_query.rows, UsageFilter(**filters), 1, 500)
    return page["data"]


@pytest.mark.parametrize("stream", [False, True])
async def test_tokens_match_what_ollama_sent(
    make_gateway: Any, fake_ollama: FakeOllama, stream: bool
) -> None:
    client = await make_gateway()
    secret = create_test_key(client.app, "alice")
    fake_ollama.push("chat", text_script("Hello", " there", metrics=METRICS))
    messages = [{"role": "user", "content": "hi"}]
    async with sdk(client, secret) as api:
        if stream:
            chunks = await api.chat.completions.create(
                model="llama3.2", messages=messages, stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
        else:
            reply = await api.chat.completions.create(model="llama3.2", messages=messages)
            text = reply.choices[0].message.content or ""
            assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (17, 9)
    assert text == "Hello there"
    [row] = await stored(client)
    assert {
        k: row[k]
        for k in (
            "key_name",
            "endpoint",
            "model",
            "ollama_model",
            "stream",
            "status",
            "error_code",
            "prompt_tokens",
            "completion_tokens",
            "cancelled",
            "load_ms",
            "tokens_per_s",
        )
    } == {
        "key_name": "alice",
        "endpoint": "/v1/chat/completions",
        "model": "llama3.2",
        "ollama_model": "llama3.2:latest",
        "stream": stream,
        "status": 200,
        "error_code": None,
        "prompt_tokens": 17,
        "completion_tokens": 9,
        "cancelled": False,
        "load_ms": 250.0,
        "tokens_per_s": 30.0,
    }
    assert row["latency_ms"] > 0 and row["client_ip"] == "127.0.0.1"
    assert row["user_agent"].startswith("AsyncOpenAI/Python")
    if stream:
        assert 0 < row["ttft_ms"] <= row["latency_ms"]
    else:  # derived: the gateway's elapsed time less Ollama's eval_duration (300 ms here)
        assert row["ttft_ms"] == 0.0
    assert row["prompt_text"] is None and row["response_text"] is None  # content logging off
    agg = await client.app[USAGE].read(
        usage_query.aggregates, UsageFilter(range="24h"), time.time()
    )
    assert (agg["totals"]["prompt_tokens"], agg["totals"]["completion_tokens"]) == (17, 9)


async def test_cancelled_stream_is_recorded_as_cancelled(
    make_gateway: Any, fake_ollama: FakeOllama
) -> None:
    client = await make_gateway()
    secret = create_test_key(client.app, "bob")
    fake_ollama.push("chat", text_script(*[f"w{i} " for i in range(200)], delay=0.05))
    body = {"model": "llama3.2", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    async with aiohttp.ClientSession() as session:
        resp = await session.post(
            client.make_url("/v1/chat/completions"), json=body, headers=auth_headers(secret)
        )
        assert resp.status == 200
        await resp.content.readline()  # the first SSE line arrives; then the client leaves
        resp.close()
    await fake_ollama.wait_disconnect()
    for _ in range(100):
        rows = await stored(client)
        if rows:
            break
        await asyncio.sleep(0.05)
    [row] = rows
    assert (row["cancelled"], row["key_name"], row["stream"]) == (True, "bob", True)
    assert row["status"] == 499 and row["error_code"] == "client_closed"
    cancelled = await client.app[USAGE].read(
        usage_query.rows, UsageFilter(status="cancelled"), 1, 10
    )
    assert len(cancelled["data"]) == 1


async def test_refusals_are_recorded(make_gateway: Any) -> None:
    client = await make_gateway()
    secret = create_test_key(client.app, "limited", rpm=1)
    narrow = create_test_key(client.app, "narrow", models=("qwen3:*",))
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "x"}]}
    url = "/v1/chat/completions"
    assert (await client.post(url, json=body)).status == 401  # no key
    assert (await client.post(url, json=body, headers=auth_headers("sk-wrong"))).status == 401
    assert (await client.post(url, json=body, headers=auth_headers(narrow))).status == 404
    assert (
        await client.post(url, json={**body, "model": "nope"}, headers=auth_headers(secret))
    ).status == 404
    assert (await client.post(url, json=body, headers=auth_headers(secret))).status == 200
    assert (await client.post(url, json=body, headers=auth_headers(secret))).status == 429
    rows = await stored(client)
    got = [
        (r["key_name"], r["model"], r["ollama_model"], r["status"], r["error_code"])
        for r in reversed(rows)
    ]
    assert got == [
        (None, None, None, 401, "invalid_api_key"),
        (None, None, None, 401, "invalid_api_key"),
        ("narrow", "llama3.2", "llama3.2:latest", 404, "model_not_found"),
        ("limited", "nope", None, 404, "model_not_found"),
        ("limited", "llama3.2", "llama3.2:latest", 200, None),
        ("limited", "llama3.2", "llama3.2:latest", 429, "rate_limit_exceeded"),
    ]
    refused = await client.app[USAGE].read(usage_query.rows, UsageFilter(key_id="none"), 1, 9)
    assert len(refused["data"]) == 2


async def test_record_survives_restart(make_gateway: Any, fake_ollama: FakeOllama) -> None:
    client = await make_gateway(admin_password=PASSWORD)
    secret = create_test_key(client.app, "carol")
    async with sdk(client, secret) as api:
        reply = await api.chat.completions.create(
            model="llama3.2", messages=[{"role": "user", "content": "remember me"}]
        )
    assert reply.choices[0].message.content
    await client.close()  # shutdown flushes the queue (no explicit flush here)
    again = await make_gateway(admin_password=PASSWORD)
    resp = await again.get("/admin/api/requests", headers=BASIC)
    rows = (await resp.json())["data"]
    assert [(r["key_name"], r["status"], r["prompt_tokens"]) for r in rows] == [
        ("carol", 200, reply.usage.prompt_tokens)
    ]


async def test_content_logging_stores_text_only_when_on(make_gateway: Any) -> None:
    client = await make_gateway(content_logging=True)
    client.app[USAGE].record(
        RequestRecord(endpoint="/v1/chat/completions", prompt_text="p", response_text="r")
    )
    [row] = await stored(client)
    assert (row["prompt_text"], row["response_text"]) == ("p", "r")


async def test_full_disk_never_fails_an_api_request(
    make_gateway: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_gateway()
    secret = create_test_key(client.app, "dave")
    recorder = client.app[USAGE]
    conn = recorder._conn
    assert conn is not None
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "x" * 3000}]}
    for _ in range(5):
        resp = await client.post(
            "/v1/chat/completions",
            json=body,
            headers={**auth_headers(secret), "User-Agent": "y" * 3000},
        )
        assert resp.status == 200
    for _ in range(100):
        if recorder.stats.write_errors >= 2:
            break
        await asyncio.sleep(0.05)
    assert recorder.stats.write_errors >= 2
    full = [r for r in caplog.records if "writing" in r.getMessage() and "failed" in r.getMessage()]
    assert len(full) == 1  # logged once, not once per retry
    assert "database or disk is full" in full[0].getMessage()
    conn.execute("PRAGMA max_page_count = 1073741823")  # space again: nothing was lost
    rows = await stored(client)
    assert len(rows) == 5 and {r["key_name"] for r in rows} == {"dave"}


@pytest.mark.parametrize(("trust_proxy", "expected"), [(False, "127.0.0.1"), (True, "203.0.113.7")])
async def test_client_ip_follows_trust_proxy(
    make_gateway: Any, trust_proxy: bool, expected: str
) -> None:
    client = await make_gateway(trust_proxy=trust_proxy)
    secret = create_test_key(client.app, "proxied")
    headers = {**auth_headers(secret), "X-Forwarded-For": "10.9.9.9, 203.0.113.7"}
    resp = await client.get("/v1/models", headers=headers)
    assert resp.status == 200
    [row] = await stored(client)
    assert row["client_ip"] == expected  # the proxy's own entry, never the spoofable first one


@pytest.mark.parametrize(
    ("thinking", "pieces", "expected"),
    [
        ((), ("Hello", " there"), 0),  # no thinking: none of the 9 tokens
        (("abcd", "efgh"), (), 9),  # thinking only (a length stop): all 9
        (("abcdefghijkl",), ("abcdef",), 6),  # 12 of 18 characters: 2/3 of 9
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_reasoning_tokens_are_derived(
    make_gateway: Any,
    fake_ollama: FakeOllama,
    stream: bool,
    thinking: tuple[str, ...],
    pieces: tuple[str, ...],
    expected: int,
) -> None:
    client = await make_gateway()
    secret = create_test_key(client.app, "thinker")
    fake_ollama.push("chat", text_script(*pieces, thinking=thinking, metrics=METRICS))
    body = {
        "model": "qwen3:8b",
        "stream": stream,
        "messages": [{"role": "user", "content": "think"}],
    }
    resp = await client.post("/v1/chat/completions", json=body, headers=auth_headers(secret))
    assert resp.status == 200
    await resp.read()
    [row] = await stored(client)
    assert (row["completion_tokens"], row["reasoning_tokens"]) == (9, expected)
