"""Operations endpoints: /healthz, /readyz and /metrics."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from api.core.errors import APIError
from appkeys import METRICS, REGISTRY, STARTED, UPSTREAM, USAGE
from state.usage_metrics import TTLCache

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 2.0  # seconds: probes must stay cheap even when Ollama hangs
PS_CACHE_SECONDS = 5.0
READY_CACHE_SECONDS = 1.0


class Ops:
    """The operations handlers and the state they share (metrics, probe caches)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.metrics = app[METRICS]
        self._ps = TTLCache(PS_CACHE_SECONDS)
        self._ready = TTLCache(READY_CACHE_SECONDS)
        self._ps_lock = asyncio.Lock()
        self._ready_lock = asyncio.Lock()

    # -- probes -------------------------------------------------------------------------------
    async def alive(self, request: web.Request) -> web.Response:
        """HEAD /: the gateway answers."""
        return web.Response(status=200)

    async def to_admin(self, request: web.Request) -> web.Response:
        """GET /: the admin."""
        raise web.HTTPFound("/admin")

    async def healthz(self, request: web.Request) -> web.Response:
        """Liveness: the process answers."""
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        """Readiness: state loaded and Ollama reachable (checked at most once a second)."""
        result = self._ready.get()
        if result is None:
            async with self._ready_lock:
                result = self._ready.get()
                if result is None:
                    result = await self._check_ready()
                    self._ready.put(result)
        checks: dict[str, Any] = dict(result)
        checks["state"] = "ok" if self.app[STARTED].value else "loading"
        checks["usage_db"] = "ok" if self.app[USAGE].available else "unavailable"
        ready = checks["state"] == "ok" and checks["ollama"] == "ok"
        return web.json_response(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status=200 if ready else 503,
        )

    async def _check_ready(self) -> dict[str, Any]:
        """Ask Ollama for its version with a short timeout."""
        try:
            data = await self.app[UPSTREAM].request_json("GET", "/api/version", total=PROBE_TIMEOUT)
        except APIError as exc:
            self.metrics.upstream_up.set(0)
            return {"ollama": exc.message}
        except RuntimeError:  # the upstream session is not open (startup or shutdown)
            return {"ollama": "the upstream client is not started"}
        self.metrics.upstream_up.set(1)
        return {"ollama": "ok", "ollama_version": data.get("version")}

    # -- metrics ------------------------------------------------------------------------------
    async def metrics_handler(self, request: web.Request) -> web.Response:
        """Prometheus exposition; requires `Authorization: Bearer <metrics_token>` when set."""
        token = self.app[REGISTRY].setting("metrics_token")
        if token:
            given = request.headers.get("Authorization", "")
            scheme, _, value = given.partition(" ")
            # aiohttp keeps undecodable header bytes as surrogates; compare the raw bytes.
            ok = hmac.compare_digest(
                value.strip().encode("utf-8", "surrogateescape"), str(token).encode("utf-8")
            )
            if scheme.lower() != "bearer" or not ok:
                return web.json_response(
                    {
                        "error": {
                            "message": "This endpoint needs 'Authorization: Bearer <token>' "
                            "with the configured metrics_token.",
                            "type": "auth_error",
                        }
                    },
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        await self.refresh_upstream()
        return web.Response(
            body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def refresh_upstream(self) -> None:
        """Update the upstream gauges from /api/ps, at most every few seconds."""
        if self._ps.get() is not None:
            return
        async with self._ps_lock:
            if self._ps.get() is not None:
                return
            started = time.monotonic()
            try:
                data = await self.app[UPSTREAM].request_json("GET", "/api/ps", total=PROBE_TIMEOUT)
            except (APIError, RuntimeError) as exc:
                log.debug("metrics: /api/ps failed: %s", exc)
                self.metrics.set_upstream(False, None)
            else:
                models = data.get("models")
                self.metrics.set_upstream(
                    True,
                    [m for m in models if isinstance(m, dict)] if isinstance(models, list) else [],
                )
            log.debug("metrics: upstream check took %.1f ms", (time.monotonic() - started) * 1000)
            self._ps.put(True)


def setup_ops(app: web.Application) -> None:
    """Register the root's routes: /healthz, /readyz, /metrics, and `/` (HEAD and GET)."""
    ops = Ops(app)
    # Claude Code probes `HEAD /` before its first request; a browser opening `/` goes to
    # the admin.
    app.router.add_route("HEAD", "/", ops.alive)
    app.router.add_get("/", ops.to_admin, allow_head=False)
    app.router.add_get("/healthz", ops.healthz)
    app.router.add_get("/readyz", ops.readyz)
    app.router.add_get("/metrics", ops.metrics_handler)
