"""Fetch http(s) image URLs from chat messages, with size and time limits and an SSRF guard.

The guard refuses private, loopback, link-local, reserved, multicast and unspecified
addresses (unless `image_allow_private`), including IPv6 forms that embed such an IPv4 address
(IPv4-mapped/-compatible, NAT64, 6to4), and follows redirects by hand so that every hop is
checked. Images are fetched through their own ClientSession (`image_session_ctx`, one per app)
whose resolver drops non-public addresses: the address checked is the address connected to,
so DNS rebinding has nothing to switch. IP literals are checked before the request (aiohttp
does not resolve them). No DNS cache, no keep-alive, no cookies are shared between fetches.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from api.core.content import MAX_IMAGE_URLS
from api.core.errors import APIError
from appkeys import IMAGES, REGISTRY, AppState

log = logging.getLogger(__name__)
MAX_REDIRECTS = 5
FETCH_CONNECTIONS = 32  # concurrent image downloads for the whole gateway
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # site-defined mapping: never trusted
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # deprecated, still routed on some networks
_allow_private: ContextVar[bool] = ContextVar("image_allow_private", default=False)
_NOT_PUBLIC = (
    "the host is a private, loopback or link-local address (set image_allow_private to allow it)."
)


class NotPublicError(OSError):
    """A host name resolved only to non-public addresses."""


def _refuse(url: str, why: str) -> APIError:
    """A 400 about one image URL (shortened in the message)."""
    shown = url if len(url) <= 120 else url[:117] + "..."
    return APIError(
        400, f"Cannot use image URL {shown}: {why}", param="messages", code="invalid_image_url"
    )


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, NAT64, 6to4)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or int(ip) >> 32 == 0:  # 64:ff9b::a.b.c.d, ::a.b.c.d
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(address: str) -> bool:
    """True if an IP address is globally routable (not private/loopback/link-local/...)."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(
        address.split("%", 1)[0]
    )
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL or ip in _SITE_LOCAL:
            return False
        ip = _embedded_ipv4(ip) or ip
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or not ip.is_global
    )


class PublicResolver(AbstractResolver):
    """Resolves once and keeps only public addresses, so the connector can reach no other."""

    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The host's addresses, without the non-public ones; NotPublicError if none is left."""
        found = await self._inner.resolve(host, port, family)
        if _allow_private.get():
            return found
        public = [r for r in found if is_public(r["host"])]
        if not public:
            raise NotPublicError(f"{host} resolves only to non-public addresses")
        return public

    async def close(self) -> None:
        """Release the inner resolver."""
        await self._inner.close()


async def image_session_ctx(app: web.Application) -> AsyncIterator[None]:
    """The app's one image-fetch session: public-only resolver, no DNS cache, no keep-alive."""
    connector = aiohttp.TCPConnector(
        resolver=PublicResolver(), use_dns_cache=False, force_close=True, limit=FETCH_CONNECTIONS
    )
    app[IMAGES] = aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
    )
    yield
    await app[IMAGES].close()


def check_host(url: URL, allow_private: bool) -> None:
    """Refuse a URL that is not http(s) or whose host is a non-public IP literal.

    Host names are checked by PublicResolver when the session connects.
    """
    if url.scheme not in ("http", "https") or not url.host:
        raise _refuse(str(url), "only http and https URLs can be fetched.")
    if allow_private:
        return
    try:
        literal = str(ipaddress.ip_address(url.host))
    except ValueError:
        return
    if not is_public(literal):
        raise _refuse(str(url), _NOT_PUBLIC)


async def fetch_image(
    session: aiohttp.ClientSession,
    url: str,
    *,
    max_bytes: int,
    time_limit: float,
    allow_private: bool,
) -> str:
    """Download one image and return it as standard base64."""
    try:
        current = URL(url)
    except ValueError:
        raise _refuse(url, "not a valid URL.") from None
    client_timeout = aiohttp.ClientTimeout(total=time_limit)
    token = _allow_private.set(allow_private)  # read by PublicResolver in this context
    try:
        async with asyncio.timeout(time_limit):
            for _ in range(MAX_REDIRECTS + 1):
                check_host(current, allow_private)
                async with session.get(
                    current, allow_redirects=False, timeout=client_timeout
                ) as resp:
                    if resp.status in (301, 302, 303, 307, 308):
                        location = resp.headers.get("Location")
                        if not location:
                            raise _refuse(url, f"redirect ({resp.status}) without a Location.")
                        try:
                            current = current.join(URL(location))
                        except ValueError:
                            raise _refuse(url, "redirect to a malformed URL.") from None
                        continue
                    if resp.status != 200:
                        raise _refuse(url, f"the server answered HTTP {resp.status}.")
                    if resp.content_length is not None and resp.content_length > max_bytes:
                        raise _refuse(url, f"the image is larger than {max_bytes} bytes.")
                    data = bytearray()
                    async for piece in resp.content.iter_chunked(65536):
                        data += piece
                        if len(data) > max_bytes:
                            raise _refuse(url, f"the image is larger than {max_bytes} bytes.")
                    if not data:
                        raise _refuse(url, "the response was empty.")
                    return base64.b64encode(bytes(data)).decode("ascii")
            raise _refuse(url, f"more than {MAX_REDIRECTS} redirects.")
    except TimeoutError:
        raise _refuse(url, f"no complete answer within {time_limit:g} seconds.") from None
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, NotPublicError):
            raise _refuse(url, _NOT_PUBLIC) from None
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            raise _refuse(url, f"cannot resolve host {current.host!r}.") from None
        raise _refuse(url, f"cannot connect ({exc.os_error.strerror or exc}).") from None
    except aiohttp.ClientError as exc:
        raise _refuse(url, f"download failed ({type(exc).__name__}: {exc}).") from None
    finally:
        _allow_private.reset(token)


async def resolve_images(
    session: aiohttp.ClientSession,
    messages: Sequence[dict[str, Any]],
    *,
    enabled: bool,
    max_bytes: int,
    time_limit: float,
    allow_private: bool,
) -> None:
    """Replace http(s) URLs in messages' `images` with fetched base64, concurrently."""
    jobs: list[tuple[list[Any], int, str]] = []
    for msg in messages:
        images = msg.get("images")
        if not isinstance(images, list):
            continue
        for i, img in enumerate(images):
            if isinstance(img, str) and img.startswith(("http://", "https://")):
                jobs.append((images, i, img))
    if not jobs:
        return
    if not enabled:
        raise APIError(
            400,
            "Image URLs are disabled on this gateway (image_fetch is off); "
            "send images as base64 data: URLs.",
            param="messages",
            code="image_fetch_disabled",
        )
    if len(jobs) > MAX_IMAGE_URLS:
        raise APIError(
            400,
            f"Too many image URLs: {len(jobs)} (at most {MAX_IMAGE_URLS} per "
            "request); send the others as base64 data: URLs.",
            param="messages",
            code="too_many_image_urls",
        )
    results = await asyncio.gather(
        *(
            fetch_image(
                session,
                url,
                max_bytes=max_bytes,
                time_limit=time_limit,
                allow_private=allow_private,
            )
            for _, _, url in jobs
        )
    )
    for (images, i, _), data in zip(jobs, results, strict=True):
        images[i] = data


async def prepare_images(app: AppState, messages: Sequence[dict[str, Any]]) -> None:
    """Fetch http(s) image URLs (guarded) and re-encode formats Ollama cannot read, in place."""
    from api.core.image_formats import convert_images  # Pillow: imported on first use

    if not any(m.get("images") for m in messages):
        return
    registry = app[REGISTRY]
    await resolve_images(
        app[IMAGES],
        messages,
        enabled=bool(registry.setting("image_fetch")),
        max_bytes=int(registry.setting("image_max_bytes")),
        time_limit=float(registry.setting("image_timeout")),
        allow_private=bool(registry.setting("image_allow_private")),
    )
    await convert_images(messages)
