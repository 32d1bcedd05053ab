"""The browser admin and its JSON API: the /admin sub-application."""

from __future__ import annotations

from aiohttp import web

from appkeys import CONFIG
from state.config import Config


def admin_app(config: Config) -> web.Application:
    """The /admin sub-app: sessions and the sign-in guard, JSON API, usage API and pages."""
    from web.admin_api import setup_admin_api
    from web.auth import setup_auth
    from web.pages import setup_pages
    from web.usage_api import setup_usage_api

    admin = web.Application()
    admin[CONFIG] = config  # the session key's cleanup_ctx reads it from this app
    setup_auth(admin)
    setup_admin_api(admin)
    setup_usage_api(admin)
    setup_pages(admin)
    return admin
