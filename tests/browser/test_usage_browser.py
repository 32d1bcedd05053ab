"""The Usage page in a real headless Chromium: CSP-clean, filters, pages, CSV, phone width."""

from __future__ import annotations

import time
from typing import Any

import pytest

from appkeys import REGISTRY, USAGE
from state.usage import RequestRecord

pytestmark = pytest.mark.browser

PASSWORD = "usage-browser-pass-1"


async def test_usage_page_in_a_browser(make_gateway: Any, tmp_path: Any, browser: Any) -> None:
    client = await make_gateway(admin_password=PASSWORD)
    alice, _ = client.app[REGISTRY].create_key("alice", ["*"])
    bob, _ = client.app[REGISTRY].create_key("bob", ["*"])
    now = time.time()
    for i in range(120):
        key = alice if i % 2 else bob
        client.app[USAGE].record(
            RequestRecord(
                ts=now - 300 * i,
                key_id=key.id,
                key_name=key.name,
                endpoint="/v1/chat/completions",
                model="llama3.2",
                ollama_model="llama3.2:latest",
                status=200 if i % 10 else 500,
                prompt_tokens=10,
                completion_tokens=i,
                latency_ms=200.0 + i,
                ttft_ms=40.0,
                request_id=f"r{i}",
            )
        )
    await client.app[USAGE].flush()
    base = str(client.make_url("")).rstrip("/")
    errors: list[str] = []
    context = await browser.new_context(
        viewport={"width": 1280, "height": 800}, accept_downloads=True
    )
    page = await context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{base}/admin/login?next=/admin/usage")
    await page.fill("input[name=username]", "admin")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/admin/usage")
    assert await page.locator(".usage-charts svg").count() == 6
    assert await page.locator(".usage-table tbody tr").count() == 50
    # Filter by key and errors through the form, as a person would.
    await page.select_option("#f-key", bob.id)  # errors are every 10th: bob's
    await page.select_option("#f-status", "error")
    await page.select_option("#f-range", "24h")
    await page.click(".usage-filters button[type=submit]")
    await page.wait_for_url(lambda url: "status=error" in url)
    assert f"key={bob.id}" in page.url and "range=24h" in page.url
    statuses = await page.locator(".usage-table td[data-label=Status]").all_inner_texts()
    assert len(statuses) == 12 and all(s.startswith("500") for s in statuses)
    # Pages: newest first, then older.
    await page.goto(f"{base}/admin/usage?range=24h")
    await page.click("a[rel=next]")
    await page.wait_for_url(lambda url: url.endswith("page=2"))
    assert await page.locator(".usage-table tbody tr").count() == 50
    async with page.expect_download() as info:
        await page.click("text=Export CSV")
    download = await info.value
    path = tmp_path / "export.csv"
    await download.save_as(path)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("time,request_id,key_id") and len(lines) == 121
    # On a phone the page fits the screen; wide content scrolls inside its box.
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.goto(f"{base}/admin/usage")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    assert errors == []  # a CSP violation (inline style/script) would show up here
