"""The browser admin and its JSON API under /admin."""

from __future__ import annotations

from aiohttp import web


def setup_admin(app: web.Application) -> None:
    """Register the admin routes (pages, JSON API, static files)."""
