"""Admin module `auth` (being written)."""

from __future__ import annotations

from aiohttp import web


def setup_auth(app: web.Application) -> None:
    """Register this module's routes."""
