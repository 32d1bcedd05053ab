"""/healthz and /readyz: unauthenticated, cheap, and honest about Ollama."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

import api.ops
from appkeys import CATALOG
from tests.fake_ollama import FakeOllama


async def test_healthz(make_gateway: Any) -> None:
    client = await make_gateway(admin_password="health-pass-123", metrics_token="t")
    resp = await client.get("/healthz")
    assert resp.status == 200 and await resp.json() == {"status": "ok"}


async def test_readyz_ready(make_gateway: Any, fake_ollama: FakeOllama) -> None:
    client = await make_gateway(admin_password="health-pass-123", metrics_token="t")
    await client.app[CATALOG].refresh()  # model discovery (which asks /api/version too) done

    def version_calls() -> int:
        return len([r for r in fake_ollama.requests if r.path == "/api/version"])

    before = version_calls()
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {
        "status": "ready",
        "checks": {
            "ollama": "ok",
            "ollama_version": fake_ollama.version,
            "state": "ok",
            "usage_db": "ok",
        },
    }
    await client.get("/readyz")
    assert version_calls() == before + 1  # the second readyz answered from its cache


async def test_readyz_ollama_unreachable(make_gateway: Any) -> None:
    client = await make_gateway(ollama_url="http://127.0.0.1:9")
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 503 and body["status"] == "not ready"
    assert body["checks"]["state"] == "ok"
    assert body["checks"]["ollama"].startswith("Cannot reach Ollama at http://127.0.0.1:9")


async def test_readyz_hanging_ollama_times_out_fast(
    make_gateway: Any, aiohttp_server: Any, monkeypatch: Any
) -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response()  # pragma: no cover - never reached

    stalled = web.Application()
    stalled.router.add_get("/api/version", hang)
    server = await aiohttp_server(stalled)
    monkeypatch.setattr(api.ops, "PROBE_TIMEOUT", 0.3)
    client = await make_gateway(ollama_url=str(server.make_url("")).rstrip("/"))
    started = time.monotonic()
    resp = await client.get("/readyz")
    assert time.monotonic() - started < 3
    body = await resp.json()
    assert resp.status == 503 and "did not answer in time" in body["checks"]["ollama"]


async def test_readyz_reports_unavailable_usage_db_but_stays_ready(
    make_gateway: Any, tmp_path: Any
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "usage.db").mkdir()  # usage cannot be stored; serving goes on
    client = await make_gateway()
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200 and body["checks"]["usage_db"] == "unavailable"
