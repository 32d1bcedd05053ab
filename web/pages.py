"""Admin module `pages` (being written)."""

from __future__ import annotations

from aiohttp import web


def setup_pages(app: web.Application) -> None:
    """Register this module's routes."""
