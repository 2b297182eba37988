"""Outgoing HTTP to customer URLs: never to loopback or private addresses (unless allowed),
never following a redirect into them, always with a timeout.

Inbound-call webhooks and event deliveries both go through ``customer_request``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

MAX_REDIRECTS = 3
MAX_RESPONSE_BYTES = 256 * 1024


class BlockedURL(ValueError):
    """The URL resolves to an address customer traffic may not reach."""


class ResponseTooLarge(httpx.HTTPError):
    """A customer URL answered with more than we are willing to read."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


def _is_blocked_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"))
    )


async def check_url(url: str, *, allow_private: bool) -> None:
    """Raise BlockedURL unless ``url`` is http(s) and every address its host resolves to is public."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedURL(f"{url!r} is not an absolute http(s) URL")
    if allow_private:
        return
    host = parts.hostname
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        if host.lower() in ("localhost",) or host.lower().endswith(".localhost"):
            raise BlockedURL(f"{host} is a loopback name")
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(
                    host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
                ),
                timeout=2.0,
            )
        except (OSError, TimeoutError) as exc:
            raise BlockedURL(f"{host} does not resolve") from exc
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        if _is_blocked_ip(address):
            raise BlockedURL(f"{host} resolves to a private or loopback address ({address})")


async def customer_request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    allow_private: bool,
    timeout: float,
    max_bytes: int = MAX_RESPONSE_BYTES,
    **kwargs: Any,
) -> httpx.Response:
    """One request to a customer URL, redirects followed by hand and each hop checked.

    The body is read up to ``max_bytes`` (a customer answer is a small JSON document; a larger one
    is refused, not buffered), and the whole exchange shares one ``timeout`` budget.
    """
    current = url
    async with asyncio.timeout(timeout):
        for _ in range(MAX_REDIRECTS + 1):
            await check_url(current, allow_private=allow_private)
            request = client.build_request(method, current, timeout=timeout, **kwargs)
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                if response.is_redirect and "location" in response.headers:
                    current = urljoin(current, response.headers["location"])
                    if response.status_code in (301, 302, 303):
                        method, kwargs = "GET", {k: v for k, v in kwargs.items() if k == "headers"}
                    continue
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise ResponseTooLarge(f"{current} answered with more than {max_bytes} bytes")
                return httpx.Response(
                    response.status_code, headers=response.headers, content=bytes(body), request=request
                )
            finally:
                await response.aclose()
    raise BlockedURL(f"too many redirects from {url}")
