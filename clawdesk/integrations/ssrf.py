"""Outbound URLs a tenant configures (in-app callbacks) must not reach internal networks.

Two checks, because a name can resolve differently later: `check_url` when the URL is
configured (scheme, and hosts that are addresses or loopback names, without DNS), and
`resolve_public` right before each request, which resolves the name and returns the
addresses to connect to, so the request goes to the address that was checked (no second
lookup a rebinding DNS server could answer differently).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port → the addresses the name resolves to (tests pass their own).
Resolver = Callable[[str, int], Awaitable[list[str]]]

ALLOWED_SCHEMES = frozenset({"http", "https"})
_LOOPBACK_NAMES = ("localhost", "localhost.localdomain")


class ForbiddenTarget(ValueError):
    """The URL would reach a private, loopback, link-local, multicast or reserved address
    (or is not an http(s) URL with a host)."""


def is_forbidden(address: IPAddress) -> bool:
    """Whether a request to this address could reach something internal."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    # is_global alone lets multicast through (224.0.0.0/4 is "global" to ipaddress).
    return (
        not address.is_global
        or address.is_multicast
        or address.is_reserved
        or address.is_link_local
        or address.is_loopback
        or address.is_unspecified
    )


def numeric_address(host: str) -> IPAddress | None:
    """The address a host names without DNS, in any form the C library reads as one
    (`127.1`, `0x7f000001`, `2130706433`, `[::1]`), else None."""
    try:
        found = socket.getaddrinfo(host.strip("[]"), None, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return ipaddress.ip_address(found[0][4][0])


def check_url(url: str, *, allow_private: bool = False) -> None:
    """ForbiddenTarget unless `url` is http(s) with a host that is not, on its face, an
    internal address (names are resolved at send time, by `resolve_public`)."""
    parts = urlsplit(url)
    if parts.scheme not in ALLOWED_SCHEMES or not parts.hostname:
        raise ForbiddenTarget(f"{url!r} is not an http(s) URL with a host")
    if allow_private:
        return
    host = parts.hostname.rstrip(".").lower()
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        raise ForbiddenTarget(f"{url!r} names a loopback host")
    address = numeric_address(host)
    if address is not None and is_forbidden(address):
        raise ForbiddenTarget(f"{url!r} is a private, loopback or reserved address")


async def system_resolve(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives for host:port (socket.gaierror if none)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def resolve_public(
    url: str, *, allow_private: bool = False, resolve: Resolver | None = None
) -> list[str]:
    """The addresses to send to for `url`; ForbiddenTarget if any is internal (unless
    allowed). A name that also resolves to an internal address is refused whole: the
    client could pick that one."""
    check_url(url, allow_private=allow_private)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    literal = numeric_address(host)
    addresses = [str(literal)] if literal else await (resolve or system_resolve)(host, port)
    if not allow_private:
        bad = [a for a in addresses if is_forbidden(ipaddress.ip_address(a.split("%")[0]))]
        if bad:
            raise ForbiddenTarget(f"{host!r} resolves to internal address {bad[0]}")
    return addresses
