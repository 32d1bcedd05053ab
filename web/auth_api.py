"""JSON endpoints for admin sign-in: login, logout, password change, session info."""

from __future__ import annotations

from aiohttp import web

from web import auth
from web.jsonapi import AdminError, bad, read_json


async def _session_info(request: web.Request) -> dict[str, object]:
    """Who is signed in, the CSRF token to send back, and whether the password must change."""
    user = await auth.current_admin(request)
    token = None if request.get("admin_via") == "basic" else await auth.csrf_token(request)
    return {
        "username": user,
        "csrf_token": token,
        "must_change_password": await auth.must_change_password(request),
    }


def _text(body: dict[str, object], name: str) -> str:
    """A required string field."""
    value = body.get(name)
    if not isinstance(value, str):
        raise bad(f"'{name}' must be a string.", name)
    return value


async def login(request: web.Request) -> web.Response:
    """POST /admin/api/login {"username", "password"}: start a browser session."""
    body = await read_json(request, frozenset({"username", "password"}))
    username, password = _text(body, "username"), _text(body, "password")
    status, message, retry = await auth._attempt(request, username, password)
    if status != 200:
        headers = {"Retry-After": str(int(retry))} if retry else None
        raise AdminError(status, message, None if retry else "password", headers)
    await auth._start_session(request, username)
    request["admin_user"] = username
    return web.json_response(await _session_info(request))


async def logout(request: web.Request) -> web.Response:
    """POST /admin/api/logout: end the session."""
    await auth.logout(request)
    return web.json_response({"ok": True})


async def password(request: web.Request) -> web.Response:
    """POST /admin/api/password {"current", "new", "confirm"}."""
    body = await read_json(request, frozenset({"current", "new", "confirm"}))
    errors = await auth.change_password(
        request, _text(body, "current"), _text(body, "new"), _text(body, "confirm")
    )
    if errors:
        field, message = next(iter(errors.items()))
        status = 429 if "Too many" in message else 400
        raise AdminError(status, message, field, fields=errors)
    return web.json_response({"ok": True, **await _session_info(request)})


async def session(request: web.Request) -> web.Response:
    """GET /admin/api/session."""
    return web.json_response(await _session_info(request))


def setup_auth_api(app: web.Application) -> None:
    """Register the sign-in endpoints."""
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_post("/api/password", password)
    app.router.add_get("/api/session", session)
