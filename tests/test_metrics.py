"""/metrics: Prometheus text that parses, counts what /v1 did, guards itself with a token."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from appkeys import USAGE
from state.usage import RequestRecord
from state.usage_metrics import endpoint_label
from tests.conftest import auth_headers, create_test_key
from tests.fake_ollama import FakeOllama, text_script

P = "ollama2openai_"


async def scrape(client: TestClient, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """GET /metrics and parse it with prometheus_client's own parser.

    Returns {sample name: {frozenset(labels.items()): value}}.
    """
    resp = await client.get("/metrics", headers=headers or {})
    text = await resp.text()
    assert resp.status == 200, text
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    out: dict[str, dict[frozenset[tuple[str, str]], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return out


def value(samples: dict[str, Any], name: str, **labels: str) -> float | None:
    """One sample's value, or None if absent."""
    return samples.get(P + name, {}).get(frozenset(labels.items()))


@pytest.mark.parametrize(
    ("endpoint", "label"),
    [
        ("/v1/chat/completions", "/v1/chat/completions"),
        ("/v1/embeddings", "/v1/embeddings"),
        ("/v1/models/{id}", "/v1/models/{id}"),
        ("/v1/models/llama3", "/v1/models/{id}"),
        ("/v1/whatever/the/client/typed", "other"),
        ("", "other"),
        ("chat.completions", "chat.completions"),
        ("/v1/" + "x" * 500, "other"),
    ],
)
def test_endpoint_labels_are_bounded(endpoint: str, label: str) -> None:
    assert endpoint_label(endpoint) == label


async def test_metrics_count_real_requests(make_gateway: Any, fake_ollama: FakeOllama) -> None:
    client = await make_gateway()
    secret = create_test_key(client.app, "alice")
    fake_ollama.push("chat", text_script("Hi", metrics={"prompt_eval_count": 12, "eval_count": 4}))
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "x"}]}
    assert (
        await client.post("/v1/chat/completions", json=body, headers=auth_headers(secret))
    ).status == 200
    assert (await client.post("/v1/chat/completions", json=body)).status == 401
    assert (
        await client.post(
            "/v1/chat/completions",
            json={**body, "model": "made-up-name"},
            headers=auth_headers(secret),
        )
    ).status == 404
    s = await scrape(client)
    ok = {"key": "alice", "model": "llama3.2:latest", "endpoint": "/v1/chat/completions"}
    assert value(s, "requests_total", **ok, status="200") == 1
    assert (
        value(
            s,
            "requests_total",
            key="none",
            model="unknown",
            endpoint="/v1/chat/completions",
            status="401",
        )
        == 1
    )
    # A model the gateway never resolved is client text: it must not become a label.
    assert (
        value(
            s,
            "requests_total",
            key="alice",
            model="unknown",
            endpoint="/v1/chat/completions",
            status="404",
        )
        == 1
    )
    assert all("made-up-name" not in dict(k).values() for k in s[P + "requests_total"])
    assert value(s, "tokens_total", key="alice", model="llama3.2:latest", type="prompt") == 12
    assert value(s, "tokens_total", key="alice", model="llama3.2:latest", type="completion") == 4
    assert value(s, "request_duration_seconds_count", endpoint="/v1/chat/completions") == 3
    assert (
        value(s, "request_duration_seconds_bucket", endpoint="/v1/chat/completions", le="+Inf") == 3
    )
    assert value(s, "requests_in_flight", endpoint="/v1/chat/completions") == 0
    assert value(s, "usage_recorder_errors_total") == 0
    assert value(s, "usage_db_available") == 1


async def test_streaming_ttft_and_in_flight(make_gateway: Any, fake_ollama: FakeOllama) -> None:
    client = await make_gateway()
    secret = create_test_key(client.app, "streamer")
    fake_ollama.push("chat", text_script("a ", "b ", "c", delay=0.3))
    body = {"model": "llama3.2", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    async with aiohttp.ClientSession() as session:
        resp = await session.post(
            client.make_url("/v1/chat/completions"), json=body, headers=auth_headers(secret)
        )
        await resp.content.readline()
        during = await scrape(client)
        await resp.read()
    await client.app[USAGE].flush()
    after = await scrape(client)
    assert value(during, "requests_in_flight", endpoint="/v1/chat/completions") == 1
    assert value(after, "requests_in_flight", endpoint="/v1/chat/completions") == 0
    assert value(after, "time_to_first_token_seconds_count", endpoint="/v1/chat/completions") == 1


async def test_upstream_gauges_from_api_ps(make_gateway: Any, fake_ollama: FakeOllama) -> None:
    client = await make_gateway()
    s = await scrape(client)
    assert value(s, "upstream_up") == 1 and value(s, "upstream_loaded_models") == 1
    loaded = fake_ollama.models[0]
    assert value(s, "upstream_model_loaded", model=loaded.name) == 1
    assert value(s, "upstream_model_vram_bytes", model=loaded.name) == loaded.size
    await scrape(client)
    assert len([r for r in fake_ollama.requests if r.path == "/api/ps"]) == 1  # cached


async def test_upstream_down(make_gateway: Any) -> None:
    client = await make_gateway(ollama_url="http://127.0.0.1:9")  # nothing listens there
    s = await scrape(client)
    assert value(s, "upstream_up") == 0 and value(s, "upstream_loaded_models") == 0


async def test_metrics_token(make_gateway: Any) -> None:
    client = await make_gateway(metrics_token="scrape-me-123")
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic abc"},
        {"Authorization": "scrape-me-123"},
    ):
        resp = await client.get("/metrics", headers=headers)
        assert resp.status == 401, headers
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert "metrics_token" in (await resp.json())["error"]["message"]
    s = await scrape(client, {"Authorization": "Bearer scrape-me-123"})
    assert P + "requests_in_flight" in s


async def test_recorder_errors_are_exported(make_gateway: Any) -> None:
    client = await make_gateway()
    recorder = client.app[USAGE]
    conn = recorder._conn
    assert conn is not None
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    for _ in range(300):
        recorder.record(RequestRecord(endpoint="/v1/chat/completions", user_agent="x" * 4000))
    for _ in range(100):
        if recorder.stats.write_errors:
            break
        await asyncio.sleep(0.05)
    s = await scrape(client)
    assert value(s, "usage_recorder_errors_total") >= 1
    assert value(s, "usage_recorder_queue") == 300
    assert (
        value(
            s,
            "requests_total",
            key="none",
            model="unknown",
            endpoint="/v1/chat/completions",
            status="200",
        )
        == 300
    )
    conn.execute("PRAGMA max_page_count = 1073741823")


async def test_each_app_has_its_own_registry(make_gateway: Any) -> None:
    first = await make_gateway()
    second = await make_gateway()
    first.app[USAGE].record(RequestRecord(endpoint="/v1/embeddings", key_name="k"))
    s1, s2 = await scrape(first), await scrape(second)
    labels = {"key": "k", "model": "unknown", "endpoint": "/v1/embeddings", "status": "200"}
    assert value(s1, "requests_total", **labels) == 1
    assert value(s2, "requests_total", **labels) is None
