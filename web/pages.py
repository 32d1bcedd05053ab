"""Admin pages: template setup, static files, login, password change and the page routes."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from web import auth

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"

NAV_ITEMS: tuple[tuple[str, str], ...] = (
    ("/admin", "Dashboard"),
    ("/admin/models", "Models"),
    ("/admin/keys", "Keys"),
    ("/admin/usage", "Usage"),
    ("/admin/settings", "Settings"),
)
# Paths that render without the navigation (nothing else is reachable from them).
_BARE_PAGES = frozenset({"/admin/login"})


async def call(fn: Any, *args: Any) -> Any:
    """Call an auth helper that may be sync or async and return its result."""
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def _nav_active(path: str) -> str:
    """The nav entry that the current path belongs to."""
    best = "/admin"
    for href, _ in NAV_ITEMS:
        if path == href or path.startswith(href + "/"):
            best = href if len(href) > len(best) else best
    return best


async def admin_context(request: web.Request) -> dict[str, Any]:
    """Values every admin page template sees: CSRF token, signed-in admin, navigation."""
    path = request.path
    # aiohttp_jinja2 runs context processors as a middleware on every request, so only
    # admin pages pay for the session lookup; /v1 and the JSON API are left alone.
    if not path.startswith("/admin") or path.startswith(("/admin/api/", "/admin/static/")):
        return {}
    user = await call(auth.current_admin, request)
    forced = bool(user) and bool(await call(auth.must_change_password, request))
    return {
        "request": request,
        "csrf_token": await call(auth.csrf_token, request),
        "admin_user": user,
        "show_nav": bool(user) and not forced and path not in _BARE_PAGES,
        "nav_items": NAV_ITEMS,
        "nav_active": _nav_active(path),
    }


def setup_pages(app: web.Application) -> None:
    """Set up Jinja2 (autoescaped), /admin/static/ and every admin page route."""
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=jinja2.ChainableUndefined,
        context_processors=[admin_context],
    )
    app.router.add_static("/admin/static/", STATIC_DIR, name="admin_static")
