"""Admin page handlers: login, forced password change, CSRF refusal, escaping, CSP-safe HTML."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from appkeys import REGISTRY, USAGE
from state import usage_query
from state.usage_query import UsageFilter
from tests.conftest import MakeGateway, create_test_key
from tests.fake_ollama import FakeOllama

NEW_PASSWORD = "correct-horse-battery"
PAGES = ("/admin", "/admin/models", "/admin/keys", "/admin/settings")
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = _CSRF.search(html)
    assert found, "page has no CSRF field"
    return found.group(1)


async def login(client: TestClient, password: str = "admin") -> Any:
    """Submit the login form the way a browser does; returns the (unfollowed) response."""
    page = await client.get("/admin/login")
    token = csrf_of(await page.text())
    return await client.post(
        "/admin/login",
        allow_redirects=False,
        data={"csrf_token": token, "username": "admin", "password": password},
    )


async def signed_in(client: TestClient) -> str:
    """Log in with admin/admin and change the password; return the page CSRF token."""
    resp = await login(client)
    assert resp.status == 303 and resp.headers["Location"] == "/admin/password"
    page = await client.get("/admin/password")
    token = csrf_of(await page.text())
    resp = await client.post(
        "/admin/password",
        allow_redirects=False,
        data={
            "csrf_token": token,
            "current": "admin",
            "new": NEW_PASSWORD,
            "confirm": NEW_PASSWORD,
        },
    )
    assert resp.status == 303, await resp.text()
    page = await client.get("/admin")
    assert page.status == 200
    return csrf_of(await page.text())


def assert_csp_safe(html: str) -> None:
    """No inline script, no inline event handler, no style attribute (the CSP forbids them)."""
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", html), "inline event handler"
    assert not re.search(r"<[^>]+\sstyle\s*=", html), "style attribute"


async def test_root_and_pages_redirect_to_login(make_gateway: MakeGateway) -> None:
    client = await make_gateway()
    resp = await client.get("/", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/admin"
    for path in PAGES:
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 302
        assert resp.headers["Location"].startswith("/admin/login")


async def test_login_page_is_csp_safe_and_has_security_headers(make_gateway: MakeGateway) -> None:
    client = await make_gateway()
    resp = await client.get("/admin/login")
    html = await resp.text()
    assert resp.status == 200
    assert "Content-Security-Policy" in resp.headers
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert_csp_safe(html)
    assert 'href="/admin/keys"' not in html  # no navigation before signing in


async def test_wrong_password_keeps_username_escaped(make_gateway: MakeGateway) -> None:
    client = await make_gateway()
    page = await client.get("/admin/login")
    token = csrf_of(await page.text())
    resp = await client.post(
        "/admin/login", data={"csrf_token": token, "username": '<b>"x"</b>', "password": "nope"}
    )
    html = await resp.text()
    assert resp.status == 401
    assert "Wrong user name or password." in html
    assert "&lt;b&gt;&#34;x&#34;&lt;/b&gt;" in html and '<b>"x"</b>' not in html


async def test_default_password_forces_change_before_anything(make_gateway: MakeGateway) -> None:
    client = await make_gateway()
    resp = await login(client)
    assert resp.status == 303 and resp.headers["Location"] == "/admin/password"
    for path in PAGES:
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "/admin/password", path
    page = await client.get("/admin/password")
    html = await page.text()
    assert "Choose a new password" in html
    assert 'href="/admin/keys"' not in html  # nothing else to go to yet
    assert_csp_safe(html)


@pytest.mark.parametrize(
    ("current", "new", "confirm", "field", "message"),
    [
        ("wrong", NEW_PASSWORD, NEW_PASSWORD, "current", "The current password is wrong."),
        ("admin", "short", "short", "new", "at least"),
        ("admin", NEW_PASSWORD, NEW_PASSWORD + "x", "confirm", "The two new passwords differ."),
    ],
)
async def test_password_errors_shown_next_to_field(
    make_gateway: MakeGateway, current: str, new: str, confirm: str, field: str, message: str
) -> None:
    client = await make_gateway()
    await login(client)
    page = await client.get("/admin/password")
    token = csrf_of(await page.text())
    resp = await client.post(
        "/admin/password",
        data={"csrf_token": token, "current": current, "new": new, "confirm": confirm},
    )
    html = await resp.text()
    assert resp.status == 400
    slot = re.search(rf'data-error-for="{field}">([^<]*)<', html)
    assert slot and message in slot.group(1), html
    assert client.app[REGISTRY].admin_password_hash is None  # nothing changed
    resp = await client.get("/admin", allow_redirects=False)
    assert resp.headers["Location"] == "/admin/password"


async def test_password_change_then_every_page_renders(make_gateway: MakeGateway) -> None:
    client = await make_gateway()
    await signed_in(client)
    page = await client.get("/admin?notice=password")
    assert "Password changed." in await page.text()
    for path in PAGES:
        resp = await client.get(path)
        html = await resp.text()
        assert resp.status == 200, (path, html[:500])
        assert 'href="/admin/keys"' in html and "Logout" in html
        assert_csp_safe(html)
    # After logging out, the old password no longer works and the new one does.
    token = csrf_of(await (await client.get("/admin")).text())
    resp = await client.post("/admin/logout", data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 303
    assert (await login(client, "admin")).status == 401
    resp = await login(client, NEW_PASSWORD)
    assert resp.status == 303 and resp.headers["Location"] == "/admin"


async def test_csrf_missing_or_wrong_is_refused_and_changes_nothing(
    make_gateway: MakeGateway,
) -> None:
    client = await make_gateway()
    await client.get("/admin/login")
    resp = await client.post(
        "/admin/login", data={"username": "admin", "password": "admin"}, allow_redirects=False
    )
    assert resp.status == 403
    assert (
        (await client.get("/admin", allow_redirects=False))
        .headers["Location"]
        .startswith("/admin/login")
    )
    await login(client)
    for token in (None, "forged"):
        data = {"current": "admin", "new": NEW_PASSWORD, "confirm": NEW_PASSWORD}
        if token:
            data["csrf_token"] = token
        resp = await client.post("/admin/password", data=data, allow_redirects=False)
        assert resp.status == 403
        assert client.app[REGISTRY].admin_password_hash is None
    token = await signed_in(client)
    resp = await client.post("/admin/logout", data={}, allow_redirects=False)
    assert resp.status == 403
    assert (await client.get("/admin")).status == 200  # still signed in
    resp = await client.post("/admin/try", json={"model": "llama3.2", "prompt": "hi"})
    assert resp.status == 403
    resp = await client.post("/admin/logout", data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/admin/login")
    assert (await client.get("/admin", allow_redirects=False)).status == 302


async def test_user_text_is_escaped_on_keys_page(make_gateway: MakeGateway) -> None:
    client = await make_gateway()
    await signed_in(client)
    evil = '<script>alert("k")</script>'
    create_test_key(client.app, name=evil, models=["<img src=x>", "llama3.2"], notes=evil)
    resp = await client.get("/admin/keys")
    html = await resp.text()
    assert evil not in html and "<img src=x>" not in html
    assert "&lt;script&gt;alert(&#34;k&#34;)&lt;/script&gt;" in html
    assert "&lt;img src=x&gt;" in html
    assert_csp_safe(html)


async def test_notice_is_never_reflected(make_gateway: MakeGateway) -> None:
    client = await make_gateway()
    await signed_in(client)
    html = await (await client.get("/admin?notice=<b>pwned</b>")).text()
    assert "pwned" not in html


@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        ("/admin/keys", "/admin/keys"),
        ("//evil.example/admin", "/admin"),
        ("https://evil.example/", "/admin"),
        ("/admin/login", "/admin"),
        ("/admin\\\\evil", "/admin"),
        ("", "/admin"),
    ],
)
def test_safe_next(next_url: str, expected: str) -> None:
    from web.pages import safe_next

    assert safe_next(next_url) == expected


async def test_dashboard_shows_ollama_and_loaded_models(make_gateway: MakeGateway) -> None:
    client = await make_gateway()
    await signed_in(client)
    create_test_key(client.app, name="on")
    create_test_key(client.app, name="off", enabled=False)
    html = await (await client.get("/admin")).text()
    assert "1 of 2 keys active" in html and "5 of 5 models enabled" in html
    assert "version 0.33.0" in html
    assert "llama3.2:latest" in html and "4,096" in html  # /api/ps context length
    assert "1.9 GB" in html  # its memory


async def test_dashboard_renders_when_ollama_is_down(make_gateway: MakeGateway) -> None:
    client = await make_gateway(ollama_url="http://127.0.0.1:9")
    await signed_in(client)
    resp = await client.get("/admin")
    html = await resp.text()
    assert resp.status == 200
    assert "Cannot reach Ollama at http://127.0.0.1:9" in html


async def test_settings_page_locks_config_values(make_gateway: MakeGateway) -> None:
    client = await make_gateway("reasoning_output: both\ndefaults:\n  temperature: 0.3\n")
    await signed_in(client)
    html = await (await client.get("/admin/settings")).text()
    select = re.search(r'<select name="reasoning_output"[^>]*>', html)
    assert select and "disabled" in select.group(0)
    assert "set in config.yaml (locked)" in html  # reasoning_output has no env var
    assert re.search(r'name="temperature" value="0.3"[^>]*disabled', html.replace("\n", " "))
    url_input = re.search(r'<input type="url" name="ollama_url"[^>]*>', html)
    assert url_input and "disabled" in url_input.group(0)  # make_gateway sets it explicitly


async def test_models_page_lists_catalog_with_sources(
    make_gateway: MakeGateway, fake_ollama: FakeOllama
) -> None:
    client = await make_gateway(
        "models:\n  qwen3:8b:\n    display_name: Qwen\n    overrides:\n      num_ctx: 8192\n"
    )
    await signed_in(client)
    html = await (await client.get("/admin/models")).text()
    for m in fake_ollama.models:
        # Case is Ollama's business (the catalog may keep its spelling or lower-case it).
        assert f'data-model-row="{m.name}"'.lower() in html.lower()
    assert "40,960" in html and "8.2B" in html and ">thinking<" in html
    flat = html.replace("\n", " ")
    assert re.search(r'name="num_ctx" value="8192"[^>]*disabled', flat)
    assert "config.yaml (locked)" in html
    assert_csp_safe(html)


async def test_try_it_runs_through_translation(
    make_gateway: MakeGateway, fake_ollama: FakeOllama
) -> None:
    client = await make_gateway("models:\n  qwen3:8b:\n    enforce:\n      temperature: 0.25\n")
    token = await signed_in(client)
    headers = {"X-CSRF-Token": token}
    resp = await client.post(
        "/admin/try", json={"model": "qwen3:8b", "prompt": "hello there"}, headers=headers
    )
    body = await resp.json()
    assert resp.status == 200, body
    assert body["content"] == "Echo: hello there"
    assert body["reasoning"] == "Thinking about: hello there"
    assert body["usage"]["total_tokens"] > 0
    sent = fake_ollama.last("/api/chat")
    assert sent["options"]["temperature"] == 0.25
    assert sent["messages"] == [{"role": "user", "content": "hello there"}]
    # The try-it box uses the GPU like a client, so it is in the usage records too.
    await client.app[USAGE].flush()
    page = await client.app[USAGE].read(usage_query.rows, UsageFilter(), 1, 10)
    [row] = page["data"]
    assert (row["key_name"], row["endpoint"], row["ollama_model"], row["status"]) == (
        "admin (try it)",
        "/admin/try",
        "qwen3:8b",
        200,
    )
    assert row["prompt_tokens"] + row["completion_tokens"] == body["usage"]["total_tokens"]


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({"model": "nope:1b", "prompt": "hi"}, 404, "model"),
        ({"model": "llama3.2", "prompt": "  "}, 400, "prompt"),
        ({"model": "", "prompt": "hi"}, 400, "model"),
        ({"model": "llama3.2", "prompt": "hi", "extra": 1}, 400, "extra"),
    ],
)
async def test_try_it_errors(
    make_gateway: MakeGateway, payload: dict[str, Any], status: int, field: str
) -> None:
    client = await make_gateway()
    token = await signed_in(client)
    resp = await client.post("/admin/try", json=payload, headers={"X-CSRF-Token": token})
    body = await resp.json()
    assert resp.status == status, body
    assert body["error"]["field"] == field and body["error"]["message"]


async def test_try_it_refuses_disabled_model(make_gateway: MakeGateway) -> None:
    client = await make_gateway("models:\n  llama3.2:\n    enabled: false\n")
    token = await signed_in(client)
    resp = await client.post(
        "/admin/try", json={"model": "llama3.2", "prompt": "hi"}, headers={"X-CSRF-Token": token}
    )
    body = await resp.json()
    assert resp.status == 400 and "disabled" in body["error"]["message"]


async def test_unknown_admin_page_is_an_html_404(make_gateway: MakeGateway) -> None:
    client = await make_gateway()
    await signed_in(client)
    resp = await client.get("/admin/nope")
    html = await resp.text()
    assert resp.status == 404 and resp.content_type == "text/html"
    assert "Page not found" in html and 'href="/admin/keys"' in html
    assert_csp_safe(html)
    resp = await client.get("/admin/", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/admin"


async def test_page_crash_is_an_html_500_not_a_traceback(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    import web.pages_settings

    def broken(_registry: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(web.pages_settings, "setting_fields", broken)
    client = await make_gateway()
    await signed_in(client)
    resp = await client.get("/admin/settings")
    html = await resp.text()
    assert resp.status == 500 and "Something went wrong" in html
    assert "secret internals" not in html and "Traceback" not in html


async def test_login_returns_to_the_page_asked_for(make_gateway: MakeGateway) -> None:
    client = await make_gateway()
    token = await signed_in(client)
    await client.post("/admin/logout", data={"csrf_token": token})
    resp = await client.get("/admin/keys", allow_redirects=False)
    assert resp.headers["Location"] == "/admin/login?next=/admin/keys"
    page = await client.get(resp.headers["Location"])
    html = await page.text()
    assert 'name="next" value="/admin/keys"' in html
    resp = await client.post(
        "/admin/login",
        allow_redirects=False,
        data={
            "csrf_token": csrf_of(html),
            "username": "admin",
            "password": NEW_PASSWORD,
            "next": "/admin/keys",
        },
    )
    assert resp.status == 303 and resp.headers["Location"] == "/admin/keys"


async def test_try_it_when_ollama_is_down(make_gateway: MakeGateway) -> None:
    client = await make_gateway(ollama_url="http://127.0.0.1:9")
    token = await signed_in(client)
    resp = await client.post(
        "/admin/try", json={"model": "llama3.2", "prompt": "hi"}, headers={"X-CSRF-Token": token}
    )
    body = await resp.json()
    assert resp.status == 502
    assert "Cannot reach Ollama at http://127.0.0.1:9" in body["error"]["message"]
