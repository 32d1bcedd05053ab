"""Who is calling: the client address, honouring a trusted reverse proxy."""

from __future__ import annotations

from aiohttp import web

from appkeys import REGISTRY


def client_ip(request: web.Request) -> str:
    """The client address; the proxy's X-Forwarded-For entry only when trust_proxy is on."""
    if request.config_dict[REGISTRY].setting("trust_proxy"):
        fwd = request.headers.get("X-Forwarded-For", "")
        if fwd:
            return fwd.split(",")[-1].strip()
    return request.remote or "unknown"
