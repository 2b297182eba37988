"""Outgoing HTTP to customer URLs: never to loopback or private addresses (unless allowed),
never following a redirect into them, always with a timeout.

Inbound-call webhooks and event deliveries both go through ``customer_request`` with a
``CustomerClient``. The check is made where the connection is made: the client's network
backend resolves the host once, refuses unless every address is allowed, and connects to one
of those addresses, so DNS cannot answer one thing to the check and another to the connection
(rebinding). The request still names the host (``Host`` header) and TLS still sends and verifies
the host name (SNI and certificate), as httpcore takes both from the URL, not the socket. Every
redirect hop is a new request through the same client, so it is checked the same way.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
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


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
RESOLVE_TIMEOUT = 2.0
MAX_ADDRESSES_TRIED = 4


async def allowed_addresses(
    host: str, port: int, *, allow_private: bool, timeout: float = RESOLVE_TIMEOUT
) -> list[IPAddress]:
    """Resolve ``host`` once; raise BlockedURL unless every address is allowed. The addresses
    returned are the ones a connection may use (never resolve the name again for it)."""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        if not allow_private and (host.lower() == "localhost" or host.lower().endswith(".localhost")):
            raise BlockedURL(f"{host} is a loopback name")
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=timeout
            )
        except (OSError, TimeoutError) as exc:
            raise BlockedURL(f"{host} does not resolve") from exc
        addresses = []
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise BlockedURL(f"{host} does not resolve") from OSError("no addresses")
    if not allow_private:
        for address in addresses:
            if _is_blocked_ip(address):
                raise BlockedURL(f"{host} resolves to a private or loopback address ({address})")
    return addresses


async def check_url(url: str, *, allow_private: bool) -> None:
    """Raise BlockedURL unless ``url`` is http(s) and every address its host resolves to is public.

    An early answer (for a clear error when a URL is saved or before a request is built); the
    connection itself is checked again by ``CustomerClient``, whatever the name resolves to then.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedURL(f"{url!r} is not an absolute http(s) URL")
    if allow_private:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    await allowed_addresses(parts.hostname, port, allow_private=False)


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to an address checked for this very connection (see the module docstring)."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if self.allow_private:
            return await self._inner.connect_tcp(
                host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
            )
        resolve_timeout = min(timeout, RESOLVE_TIMEOUT) if timeout else RESOLVE_TIMEOUT
        addresses = await allowed_addresses(host, port, allow_private=False, timeout=resolve_timeout)
        failure: Exception | None = None
        for address in addresses[:MAX_ADDRESSES_TRIED]:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedURL("customer traffic never goes to a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class CustomerTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with the checking network backend (no proxy, no environment settings)."""

    def __init__(
        self,
        *,
        allow_private: bool,
        limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20),
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        super().__init__(limits=limits, trust_env=False)
        # httpx takes no network backend of its own, so the pool it made is replaced by the same
        # pool with ours (``handle_async_request`` sends through ``self._pool``).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_CheckedBackend(allow_private=allow_private),
        )


class CustomerClient(httpx.AsyncClient):
    """The one kind of client customer URLs are fetched with (``customer_request`` insists)."""

    def __init__(
        self,
        *,
        allow_private: bool,
        limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20),
        verify: ssl.SSLContext | bool = True,
        **kwargs: Any,
    ) -> None:
        transport = CustomerTransport(allow_private=allow_private, limits=limits, verify=verify)
        super().__init__(transport=transport, trust_env=False, follow_redirects=False, **kwargs)
        self.allow_private = allow_private


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
    is refused, not buffered), and the whole exchange shares one ``timeout`` budget. ``client``
    must be a ``CustomerClient`` that checks at least as strictly as ``allow_private`` says.
    """
    if not isinstance(client, CustomerClient) or (client.allow_private and not allow_private):
        raise TypeError("customer URLs are fetched with a CustomerClient(allow_private=False)")
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
