"""Admin module `admin_api` (being written)."""

from __future__ import annotations

from aiohttp import web


def setup_admin_api(app: web.Application) -> None:
    """Register this module's routes."""
