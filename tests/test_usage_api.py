"""Admin usage API, CSV export, Usage page and per-key summary, through the real app."""

from __future__ import annotations

import base64
import csv
import io
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from appkeys import REGISTRY, USAGE
from state.usage import RequestRecord
from web.usage_api import key_usage_summary

PASSWORD = "usage-tests-pass-1"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}


@pytest.fixture
async def gateway(make_gateway: Any) -> TestClient:
    """The gateway with a known admin password (HTTP Basic works for GETs)."""
    return await make_gateway(admin_password=PASSWORD)


async def seed(client: TestClient, n: int = 30) -> dict[str, str]:
    """Record n requests for two keys and some refusals; returns key ids by name."""
    registry = client.app[REGISTRY]
    alice, _ = registry.create_key("alice", ["*"])
    bob, _ = registry.create_key("bob", ["*"])
    now = time.time()
    for i in range(n):
        key = (alice, bob, None)[i % 3]
        client.app[USAGE].record(
            RequestRecord(
                ts=now - 60 * i,
                key_id=key.id if key else None,
                key_name=key.name if key else None,
                endpoint="/v1/chat/completions",
                model="llama3.2",
                ollama_model="llama3.2:latest" if key else None,
                status=200 if key else 401,
                error_code=None if key else "invalid_api_key",
                prompt_tokens=10 if key else 0,
                completion_tokens=i if key else 0,
                latency_ms=100.0 + i,
                ttft_ms=20.0 if key else None,
                request_id=f"req-{i}",
                client_ip="127.0.0.1",
                user_agent='=HYPERLINK("http://x")' if i == 1 else "sdk",
                stream=i % 2 == 0,
                cancelled=i == 4,
            )
        )
    await client.app[USAGE].flush()
    return {"alice": alice.id, "bob": bob.id}


async def get_json(client: TestClient, url: str, status: int = 200) -> Any:
    """GET with admin Basic auth and return the JSON body, checking the status."""
    resp = await client.get(url, headers=BASIC)
    body = await resp.json()
    assert resp.status == status, body
    return body


async def test_endpoints_need_admin_auth(gateway: TestClient) -> None:
    for url in ("/admin/api/usage", "/admin/api/requests", "/admin/api/usage.csv"):
        resp = await gateway.get(url)
        assert resp.status == 401, url
        assert "message" in (await resp.json())["error"]
    resp = await gateway.get("/admin/usage", allow_redirects=False)
    assert resp.status in (302, 303) and resp.headers["Location"].startswith("/admin/login")


async def test_usage_aggregates(gateway: TestClient) -> None:
    ids = await seed(gateway)
    data = await get_json(gateway, "/admin/api/usage?range=24h")
    t = data["totals"]
    assert (t["requests"], t["errors"], t["cancelled"]) == (30, 10, 1)
    assert t["prompt_tokens"] == 200
    assert t["completion_tokens"] == sum(i for i in range(30) if i % 3 != 2)
    assert data["bucket_seconds"] == 3600 and sum(p["requests"] for p in data["series"]) == 30
    assert data["filter"] == {"range": "24h"}
    assert {(k["key_id"], k["key_name"], k["requests"]) for k in data["keys"]} == {
        (ids["alice"], "alice", 10),
        (ids["bob"], "bob", 10),
        (None, None, 10),
    }
    assert {(m["model"], m["requests"]) for m in data["models"]} == {
        ("llama3.2:latest", 20),
        ("llama3.2", 10),
    }
    # A renamed key shows under its current name.
    gateway.app[REGISTRY].keys[ids["bob"]].name = "robert"
    only = await get_json(gateway, f"/admin/api/usage?range=24h&key={ids['bob']}")
    assert only["totals"]["requests"] == 10 and only["keys"][0]["key_name"] == "robert"


async def test_requests_rows_filters_and_pages(gateway: TestClient) -> None:
    ids = await seed(gateway)
    page = await get_json(gateway, "/admin/api/requests?per_page=4")
    assert [r["request_id"] for r in page["data"]] == ["req-0", "req-1", "req-2", "req-3"]
    assert page["has_more"] is True and page["page"] == 1
    first = page["data"][0]
    assert {
        k: first[k]
        for k in (
            "key_id",
            "endpoint",
            "model",
            "ollama_model",
            "stream",
            "status",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "latency_ms",
            "ttft_ms",
            "cancelled",
        )
    } == {
        "key_id": ids["alice"],
        "endpoint": "/v1/chat/completions",
        "model": "llama3.2",
        "ollama_model": "llama3.2:latest",
        "stream": True,
        "status": 200,
        "prompt_tokens": 10,
        "completion_tokens": 0,
        "total_tokens": 10,
        "latency_ms": 100.0,
        "ttft_ms": 20.0,
        "cancelled": False,
    }
    last = await get_json(gateway, "/admin/api/requests?per_page=4&page=8")
    assert [r["request_id"] for r in last["data"]] == ["req-28", "req-29"]
    assert last["has_more"] is False
    refused = await get_json(gateway, "/admin/api/requests?key=none&status=401")
    assert len(refused["data"]) == 10
    assert {(r["status"], r["error_code"]) for r in refused["data"]} == {(401, "invalid_api_key")}
    bob = await get_json(gateway, f"/admin/api/requests?key={ids['bob']}&status=ok")
    assert [r["request_id"] for r in bob["data"]] == [f"req-{i}" for i in range(1, 30, 3)]
    cancelled = await get_json(gateway, "/admin/api/requests?status=cancelled")
    assert [r["request_id"] for r in cancelled["data"]] == ["req-4"]
    model = await get_json(gateway, "/admin/api/requests?model=llama3.2:latest&per_page=500")
    assert len(model["data"]) == 20


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=teapot", "status"),
        ("since=yesterday", "since"),
        ("range=2w", "range"),
        ("per_page=0", "per_page"),
        ("page=x", "page"),
        ("since=2026-09-02&until=2026-09-01", "until"),
    ],
)
async def test_bad_filters_are_400_naming_the_field(
    gateway: TestClient, query: str, field: str
) -> None:
    for path in ("/admin/api/requests", "/admin/api/usage", "/admin/api/usage.csv"):
        if field in ("page", "per_page") and path != "/admin/api/requests":
            continue
        body = await get_json(gateway, f"{path}?{query}", 400)
        assert body["error"]["field"] == field and body["error"]["message"]


async def test_csv_export_of_filtered_rows(
    gateway: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import web.usage_api

    monkeypatch.setattr(web.usage_api, "CSV_BATCH", 7)  # several batches, keyset paging
    ids = await seed(gateway)
    resp = await gateway.get(f"/admin/api/usage.csv?key={ids['bob']}", headers=BASIC)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert resp.headers["Content-Disposition"].startswith('attachment; filename="usage-')
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [r["request_id"] for r in rows] == [f"req-{i}" for i in range(1, 30, 3)]
    assert rows[0]["key_name"] == "bob" and rows[0]["status"] == "200"
    assert rows[0]["stream"] == "false" and rows[0]["prompt_tokens"] == "10"
    assert rows[0]["completion_tokens"] == "1" and rows[0]["ttft_ms"] == "20.0"
    # A user agent that a spreadsheet would run as a formula is defused.
    assert rows[0]["user_agent"] == '\'=HYPERLINK("http://x")'
    everything = list(
        csv.DictReader(
            io.StringIO(await (await gateway.get("/admin/api/usage.csv", headers=BASIC)).text())
        )
    )
    assert len(everything) == 30
    empty = await gateway.get("/admin/api/usage.csv?model=nothing", headers=BASIC)
    assert (await empty.text()).splitlines() == [",".join(web.usage_api.CSV_FIELDS)]


async def test_usage_page_renders_charts_table_and_filters(gateway: TestClient) -> None:
    ids = await seed(gateway, n=60)
    gateway.app[REGISTRY].keys[ids["alice"]].name = "<b>alice</b>"
    resp = await gateway.get("/admin/usage?range=24h&status=error&key=none", headers=BASIC)
    html = await resp.text()
    assert resp.status == 200
    assert html.count("<svg") == 6  # requests, tokens, latency, error rate, top keys, models
    assert "&lt;b&gt;alice&lt;/b&gt;" in html and "<b>alice</b>" not in html
    assert html.count("invalid_api_key") == 20  # the 20 refused rows of the last 24 h
    assert 'href="/admin/api/usage.csv?range=24h&amp;key=none&amp;status=error"' in html
    assert "<script>" not in html.split("</main>")[0]  # no inline script (CSP)
    page1 = await (await gateway.get("/admin/usage?range=24h", headers=BASIC)).text()
    assert 'href="/admin/usage?range=24h&amp;page=2"' in page1 and 'rel="prev"' not in page1
    page2 = await (await gateway.get("/admin/usage?range=24h&page=2", headers=BASIC)).text()
    assert 'rel="prev"' in page2 and 'rel="next"' not in page2


async def test_usage_page_bad_filter_shows_message_next_to_field(gateway: TestClient) -> None:
    resp = await gateway.get("/admin/usage?since=%3Cscript%3E", headers=BASIC)
    html = await resp.text()
    assert resp.status == 400
    assert "`since` must be an ISO 8601 date" in html and "&#39;&lt;script&gt;&#39;" in html
    assert "<script>" not in html.split("</main>")[0]


async def test_usage_page_empty_database(gateway: TestClient) -> None:
    resp = await gateway.get("/admin/usage", headers=BASIC)
    html = await resp.text()
    assert resp.status == 200 and "No requests match these filters." in html
    assert html.count("No data") == 6


async def test_key_usage_summary_and_keys_page(gateway: TestClient) -> None:
    ids = await seed(gateway)
    summary = await key_usage_summary(gateway.app, ids["alice"])
    assert summary is not None
    assert (summary["requests"], summary["prompt_tokens"], summary["errors"]) == (10, 100, 0)
    assert summary["series"][-1]["requests"] + summary["series"][-2]["requests"] == 10
    assert (
        str(summary["svg"]).startswith("<svg")
        and summary["url"] == f"/admin/usage?key={ids['alice']}&range=7d"
    )
    html = await (await gateway.get("/admin/keys", headers=BASIC)).text()
    assert "10 requests" in html and f"/admin/usage?key={ids['alice']}&amp;range=7d" in html


async def test_unavailable_database_is_503_not_500(make_gateway: Any, tmp_path: Any) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "usage.db").mkdir()  # cannot be opened as a database
    client = await make_gateway(admin_password=PASSWORD)
    body = await get_json(client, "/admin/api/usage", 503)
    assert "unavailable" in body["error"]["message"]
    await get_json(client, "/admin/api/requests", 503)
    resp = await client.get("/admin/usage", headers=BASIC)
    assert resp.status == 503 and "Usage data is unavailable" in await resp.text()
    assert await key_usage_summary(client.app, "x") is None


async def test_usage_page_shows_stored_content_escaped(make_gateway: Any) -> None:
    client = await make_gateway(admin_password=PASSWORD, content_logging=True)
    client.app[USAGE].record(
        RequestRecord(
            endpoint="/v1/chat/completions",
            request_id="c1",
            prompt_text="<img src=x onerror=alert(1)>",
            response_text="x" * 5000,
        )
    )
    client.app[USAGE].record(RequestRecord(endpoint="/v1/chat/completions", request_id="c2"))
    await client.app[USAGE].flush()
    html = await (await client.get("/admin/usage", headers=BASIC)).text()
    assert html.count("<details>") == 1  # only the row that has stored text
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "<img src=x" not in html
    assert "x" * 3900 in html and "x" * 4001 not in html  # cut near 4,000 characters
    assert "full text in the CSV export" in html
