"""The browser admin and its JSON API under /admin."""

from __future__ import annotations

from aiohttp import web


def setup_admin(app: web.Application) -> None:
    """Register the admin: auth and sessions, JSON API, usage API, pages and static files."""
    from web.admin_api import setup_admin_api
    from web.auth import scope_to_admin, setup_auth
    from web.pages import setup_pages
    from web.usage_api import setup_usage_api

    first = len(app.middlewares)
    setup_auth(app)
    setup_admin_api(app)
    setup_usage_api(app)
    setup_pages(app)
    scope_to_admin(app, first)  # /v1 requests skip the admin's middlewares
