"""Admin authentication: sessions, CSRF, forced password change, throttling, HTTP Basic."""

from __future__ import annotations

import base64
import os
import stat
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from appkeys import ADMIN, AUTH, REGISTRY
from web import auth

NEW_PW = "correct horse battery"


def basic(user: str, password: str) -> dict[str, str]:
    """An HTTP Basic header."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def login(client: TestClient, user: str = "admin", password: str = "admin") -> str:
    """Sign in through the JSON API; returns the CSRF token."""
    resp = await client.post("/admin/api/login", json={"username": user, "password": password})
    body = await resp.json()
    assert resp.status == 200, body
    return str(body["csrf_token"])


async def change_default(client: TestClient) -> str:
    """Sign in with admin/admin and change the password; returns the new CSRF token."""
    token = await login(client)
    resp = await client.post(
        "/admin/api/password",
        headers={"X-CSRF-Token": token},
        json={"current": "admin", "new": NEW_PW, "confirm": NEW_PW},
    )
    body = await resp.json()
    assert resp.status == 200, body
    return str(body["csrf_token"])


async def test_api_requires_sign_in(make_gateway: Any) -> None:
    client = await make_gateway()
    resp = await client.get("/admin/api/keys")
    assert resp.status == 401
    body = await resp.json()
    assert "Not signed in" in body["error"]["message"]
    assert "WWW-Authenticate" not in resp.headers  # no browser pop-up for fetch() calls


async def test_pages_redirect_to_login(make_gateway: Any) -> None:
    client = await make_gateway()
    resp = await client.get("/admin/keys", allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "/admin/login?next=/admin/keys"


async def test_security_headers_on_admin_responses(make_gateway: Any) -> None:
    client = await make_gateway()
    for path in ("/admin/api/keys", "/admin/keys", "/admin/api/nope"):
        resp = await client.get(path, allow_redirects=False)
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_forced_password_change(make_gateway: Any) -> None:
    client = await make_gateway()
    token = await login(client)
    session = await (await client.get("/admin/api/session")).json()
    assert session == {"username": "admin", "csrf_token": token, "must_change_password": True}
    resp = await client.get("/admin/api/keys")
    assert resp.status == 403
    body = await resp.json()
    assert "default admin password must be changed" in body["error"]["message"]
    page = await client.get("/admin/keys", allow_redirects=False)
    assert page.status == 303 and page.headers["Location"] == "/admin/password"
    # HTTP Basic with the default password is refused the same way.
    resp = await client.get("/admin/api/keys", headers=basic("admin", "admin"))
    assert resp.status == 403
    # A too-short or mismatched new password is refused, naming the field.
    resp = await client.post(
        "/admin/api/password",
        headers={"X-CSRF-Token": token},
        json={"current": "admin", "new": "short", "confirm": "short"},
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["field"] == "new"
    resp = await client.post(
        "/admin/api/password",
        headers={"X-CSRF-Token": token},
        json={"current": "admin", "new": NEW_PW, "confirm": NEW_PW + "x"},
    )
    assert (await resp.json())["error"]["fields"] == {"confirm": "The two new passwords differ."}
    assert client.app[REGISTRY].admin_password_hash is None
    # The real change.
    resp = await client.post(
        "/admin/api/password",
        headers={"X-CSRF-Token": token},
        json={"current": "admin", "new": NEW_PW, "confirm": NEW_PW},
    )
    assert resp.status == 200
    stored = client.app[REGISTRY].admin_password_hash
    assert stored is not None and stored.startswith("scrypt$") and NEW_PW not in stored
    resp = await client.get("/admin/api/keys")
    assert resp.status == 200
    # Old password no longer works; the new one does, over Basic too.
    assert (await client.get("/admin/api/keys", headers=basic("admin", "admin"))).status == 401
    assert (await client.get("/admin/api/keys", headers=basic("admin", NEW_PW))).status == 200


async def test_password_change_persists_and_ends_other_sessions(
    make_gateway: Any, aiohttp_client: Any
) -> None:
    client = await make_gateway()
    other = await aiohttp_client(client.server)  # a second browser
    await login(other)
    await change_default(client)
    resp = await other.get("/admin/api/session")
    assert (await resp.json())["username"] is None
    state = (client.app[REGISTRY].writer.store.path).read_text()  # type: ignore[union-attr]
    assert "scrypt$" in state and NEW_PW not in state


async def test_csrf_refused_and_nothing_changes(make_gateway: Any) -> None:
    client = await make_gateway()
    token = await change_default(client)
    for headers in ({}, {"X-CSRF-Token": "wrong"}):
        resp = await client.post(
            "/admin/api/keys", headers=headers, json={"name": "evil", "models": ["*"]}
        )
        assert resp.status == 403
        assert (await resp.json())["error"]["field"] == "csrf_token"
    # A form post without the token is refused too.
    resp = await client.post("/admin/api/keys", data={"name": "evil"})
    assert resp.status == 403
    assert client.app[REGISTRY].keys == {}
    # The password endpoint needs it as well.
    resp = await client.post(
        "/admin/api/password", json={"current": NEW_PW, "new": "x" * 12, "confirm": "x" * 12}
    )
    assert resp.status == 403
    resp = await client.post(
        "/admin/api/keys", headers={"X-CSRF-Token": token}, json={"name": "good", "models": ["*"]}
    )
    assert resp.status == 201, await resp.text()


async def test_login_form_post_needs_csrf(make_gateway: Any) -> None:
    client = await make_gateway()
    resp = await client.post(
        "/admin/login", data={"username": "admin", "password": "admin"}, allow_redirects=False
    )
    assert resp.status == 403


async def test_json_login_needs_json_content_type(make_gateway: Any) -> None:
    client = await make_gateway()
    resp = await client.post("/admin/api/login", data={"username": "admin", "password": "admin"})
    assert resp.status == 415


async def test_login_throttled_per_user_and_ip(make_gateway: Any) -> None:
    client = await make_gateway()
    for _ in range(auth.FREE_ATTEMPTS):
        resp = await client.post("/admin/api/login", json={"username": "admin", "password": "no"})
        assert resp.status == 401
    # Even the right password is refused during the back-off.
    resp = await client.post("/admin/api/login", json={"username": "admin", "password": "admin"})
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1
    assert "Too many failed logins" in (await resp.json())["error"]["message"]
    # HTTP Basic is throttled by the same counters.
    resp = await client.get("/admin/api/session", headers=basic("admin", "admin"))
    assert resp.status == 429
    # Another user name from the same IP is also throttled (per-IP counter).
    resp = await client.post("/admin/api/login", json={"username": "root", "password": "x"})
    assert resp.status == 429
    client.app[ADMIN][AUTH].throttle.success(["ip:127.0.0.1", "user:admin"])
    assert (
        await client.post("/admin/api/login", json={"username": "admin", "password": "admin"})
    ).status == 200


def test_throttle_backoff_grows() -> None:
    t = auth.Throttle()
    keys = ["ip:x"]
    for i in range(auth.FREE_ATTEMPTS):
        assert t.wait(keys, 100.0 + i) == 0
        t.fail(keys, 100.0 + i)
    last = 100.0 + auth.FREE_ATTEMPTS - 1
    assert t.wait(keys, last) == pytest.approx(1.0)
    t.fail(keys, last)
    assert t.wait(keys, last) == pytest.approx(2.0)
    assert t.wait(keys, last + auth.FORGET_AFTER + 1) == 0


async def test_http_basic_needs_no_csrf(make_gateway: Any) -> None:
    client = await make_gateway()
    await change_default(client)
    resp = await client.post(
        "/admin/api/keys", headers=basic("admin", NEW_PW), json={"name": "script", "models": ["*"]}
    )
    assert resp.status == 201
    resp = await client.get("/admin/api/keys", headers=basic("admin", "wrong"))
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Basic")
    resp = await client.get("/admin/api/keys", headers={"Authorization": "Basic !!!"})
    assert resp.status == 401


async def test_cookie_flags_and_secret_file(make_gateway: Any, tmp_path: Any) -> None:
    client = await make_gateway()
    resp = await client.post("/admin/api/login", json={"username": "admin", "password": "admin"})
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    path = tmp_path / "data" / "session_secret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


async def test_cookie_secure_behind_trusted_proxy(make_gateway: Any) -> None:
    client = await make_gateway(trust_proxy=True)
    resp = await client.post(
        "/admin/api/login",
        headers={"X-Forwarded-Proto": "https"},
        json={"username": "admin", "password": "admin"},
    )
    assert "Secure" in resp.headers["Set-Cookie"]
    client2 = await make_gateway(trust_proxy=False)
    resp = await client2.post(
        "/admin/api/login",
        headers={"X-Forwarded-Proto": "https"},
        json={"username": "admin", "password": "admin"},
    )
    assert "Secure" not in resp.headers["Set-Cookie"]


async def test_configured_password(make_gateway: Any) -> None:
    client = await make_gateway(admin_password="from-the-env-123")
    assert not await auth.must_change_password(client.app)
    assert (
        await client.get("/admin/api/keys", headers=basic("admin", "from-the-env-123"))
    ).status == 200


async def test_session_idle_expiry(make_gateway: Any) -> None:
    client = await make_gateway()
    await login(client)
    # Simulate an idle session by shrinking the idle limit below zero.
    client.app[REGISTRY].settings_state["session_idle_minutes"] = -1
    resp = await client.get("/admin/api/session")
    assert (await resp.json())["username"] is None


async def test_bad_login_bodies(make_gateway: Any) -> None:
    client = await make_gateway()
    cases = [
        (b"{", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"username": 1, "password": "x"}', "'username' must be a string"),
        (b'{"username": "a", "password": "x", "x": 1}', "Unknown field 'x'"),
    ]
    for raw, text in cases:
        resp = await client.post(
            "/admin/api/login", data=raw, headers={"Content-Type": "application/json"}
        )
        assert resp.status == 400
        assert text in (await resp.json())["error"]["message"]


async def test_login_throttled_per_user_across_ips(make_gateway: Any) -> None:
    client = await make_gateway(trust_proxy=True)
    for n in range(auth.FREE_ATTEMPTS):  # a distributed guess at the admin password
        resp = await client.post(
            "/admin/api/login",
            headers={"X-Forwarded-For": f"10.0.0.{n}"},
            json={"username": "admin", "password": f"guess{n}"},
        )
        assert resp.status == 401
    resp = await client.post(
        "/admin/api/login",
        headers={"X-Forwarded-For": "10.9.9.9"},
        json={"username": "admin", "password": "admin"},
    )
    assert resp.status == 429
    # Another user from a fresh address is not affected.
    resp = await client.post(
        "/admin/api/login",
        headers={"X-Forwarded-For": "10.8.8.8"},
        json={"username": "someone", "password": "x"},
    )
    assert resp.status == 401


def test_user_name_backoff_is_capped_but_ip_backoff_is_not() -> None:
    """M3: failures from anywhere slow a user name by a few seconds at most; per IP the
    back-off keeps doubling."""
    from web.throttle import USER_MAX_BACKOFF

    t = auth.Throttle()
    now = 1000.0
    for i in range(40):  # a distributed guess: every attempt from a new address
        t.fail([f"ip:10.0.{i}.1", "user:admin"], now)
    assert 0 < t.wait(["ip:10.9.9.9", "user:admin"], now) <= USER_MAX_BACKOFF
    assert t.wait(["ip:10.9.9.9", "user:admin"], now + USER_MAX_BACKOFF) == 0
    for _ in range(15):
        t.fail(["ip:10.0.0.99"], now)
    assert t.wait(["ip:10.0.0.99", "user:other"], now) == auth.MAX_BACKOFF


async def test_stranger_failures_delay_the_admin_only_briefly(make_gateway: Any) -> None:
    """M3 end to end: after many failures for 'admin' from other addresses, the real admin
    from a clean address gets in once the short per-user delay has passed."""
    client = await make_gateway(trust_proxy=True)
    throttle = client.app[ADMIN][AUTH].throttle
    for n in range(30):
        throttle.fail([f"ip:10.0.0.{n}", "user:admin"], 0.0)  # long ago: delays have passed
    resp = await client.post(
        "/admin/api/login",
        headers={"X-Forwarded-For": "10.9.9.9"},
        json={"username": "admin", "password": "admin"},
    )
    assert resp.status == 200
    # The success forgot the user name's and that address's counters, not the attackers'.
    assert throttle.wait(["ip:10.9.9.9", "user:admin"], 1.0) == 0


async def test_admin_api_changes_need_json_or_no_body(make_gateway: Any) -> None:
    """M1: a form or text body (what a cross-site page can send with cached Basic credentials)
    is refused with 415; JSON and body-less calls (rotate) work."""
    client = await make_gateway()
    await change_default(client)
    creds = basic("admin", NEW_PW)
    resp = await client.post("/admin/api/keys", headers=creds, json={"name": "a", "models": ["*"]})
    assert resp.status == 201
    key = await resp.json()
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        resp = await client.post(
            f"/admin/api/keys/{key['id']}/rotate",
            data=b"",
            headers={**creds, "Content-Type": ctype},
        )
        assert resp.status == 415, ctype
        assert "application/json" in (await resp.json())["error"]["message"]
    resp = await client.post(f"/admin/api/keys/{key['id']}/rotate", headers=creds)
    assert resp.status == 200
    resp = await client.get("/admin/api/keys", headers={**creds, "Sec-Fetch-Site": "cross-site"})
    assert resp.status == 403
    resp = await client.get("/admin/api/keys", headers={**creds, "Sec-Fetch-Site": "same-origin"})
    assert resp.status == 200
