"""Operations endpoints: /healthz, /readyz and /metrics."""

from __future__ import annotations

from aiohttp import web


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


def setup_ops(app: web.Application) -> None:
    """Register the operations routes."""
    app.router.add_get("/healthz", healthz)
