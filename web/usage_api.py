"""Admin module `usage_api` (being written)."""

from __future__ import annotations

from aiohttp import web


def setup_usage_api(app: web.Application) -> None:
    """Register this module's routes."""
