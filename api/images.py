"""Fetch http(s) image URLs from chat messages, with size and time limits and an SSRF guard.

The guard resolves the host and refuses private, loopback, link-local, reserved, multicast
and unspecified addresses (unless `image_allow_private`), and follows redirects by hand so
that every hop is checked. Known limit: the address is checked before aiohttp connects, so a
DNS server answering differently within the same second (rebinding) is not caught.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import socket
from collections.abc import Sequence
from typing import Any

import aiohttp
from yarl import URL

from api.errors import APIError

log = logging.getLogger(__name__)
MAX_REDIRECTS = 5


def _refuse(url: str, why: str) -> APIError:
    """A 400 about one image URL (shortened in the message)."""
    shown = url if len(url) <= 120 else url[:117] + "..."
    return APIError(400, f"Cannot use image URL {shown}: {why}", param="messages",
                    code="invalid_image_url")


def is_public(address: str) -> bool:
    """True if an IP address is globally routable (not private/loopback/link-local/...)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved
                or ip.is_multicast or ip.is_unspecified or not ip.is_global)


async def check_host(url: URL, allow_private: bool) -> None:
    """Refuse a URL whose host resolves to a non-public address."""
    if url.scheme not in ("http", "https") or not url.host:
        raise _refuse(str(url), "only http and https URLs can be fetched.")
    if allow_private:
        return
    host = url.host
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, url.port or 80, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise _refuse(str(url), f"cannot resolve host {host!r} ({exc}).") from None
        addresses = [str(info[4][0]) for info in infos]
    if not addresses or not all(is_public(a) for a in addresses):
        raise _refuse(str(url), "the host is a private, loopback or link-local address "
                                "(set image_allow_private to allow it).")


async def fetch_image(session: aiohttp.ClientSession, url: str, *, max_bytes: int,
                      time_limit: float, allow_private: bool) -> str:
    """Download one image and return it as standard base64."""
    try:
        current = URL(url)
    except ValueError:
        raise _refuse(url, "not a valid URL.") from None
    client_timeout = aiohttp.ClientTimeout(total=time_limit)
    try:
        async with asyncio.timeout(time_limit):
            for _ in range(MAX_REDIRECTS + 1):
                await check_host(current, allow_private)
                async with session.get(current, allow_redirects=False,
                                       timeout=client_timeout) as resp:
                    if resp.status in (301, 302, 303, 307, 308):
                        location = resp.headers.get("Location")
                        if not location:
                            raise _refuse(url, f"redirect ({resp.status}) without a Location.")
                        current = current.join(URL(location))
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
    except aiohttp.ClientError as exc:
        raise _refuse(url, f"download failed ({type(exc).__name__}: {exc}).") from None


async def resolve_images(session: aiohttp.ClientSession, messages: Sequence[dict[str, Any]], *,
                         enabled: bool, max_bytes: int, time_limit: float,
                         allow_private: bool) -> None:
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
        raise APIError(400, "Image URLs are disabled on this gateway (image_fetch is off); "
                            "send images as base64 data: URLs.", param="messages",
                       code="image_fetch_disabled")
    results = await asyncio.gather(*(fetch_image(session, url, max_bytes=max_bytes,
                                                 time_limit=time_limit, allow_private=allow_private)
                                     for _, _, url in jobs))
    for (images, i, _), data in zip(jobs, results, strict=True):
        images[i] = data
