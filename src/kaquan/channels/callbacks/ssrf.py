"""Which callback URLs kaquan calls: http(s) to public addresses only, unless the operator allows private ones.

A URL is checked when an endpoint is set and again before every send, because
DNS answers change. Every address the host resolves to must be public, so a
name with one private address among public ones is refused too. The send then
connects to an address that was checked, keeping the URL's host in the Host
header and the TLS server name (`Target.pinned`): a DNS answer that changes
between the check and the connection (DNS rebinding) cannot turn a callback
inward. Refusals name the host and the reason, never the whole URL, which may
carry a token in its query.
"""

import asyncio
import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from kaquan.channels.callbacks.errors import CallbackUrlRefused

MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT_S = 5.0
DEFAULT_PORTS = {"http": 80, "https": 443}

Address = IPv4Address | IPv6Address


@dataclass(frozen=True)
class Pinned:
    """One request's connection details: the URL naming the checked address, and what keeps the real host."""

    url: str
    headers: dict[str, str]
    extensions: dict[str, Any]


@dataclass(frozen=True)
class Target:
    """A checked URL and the addresses (in resolver order) it may be sent to."""

    url: str
    addresses: tuple[Address, ...]

    def pinned(self, address: Address) -> Pinned:
        """Connect to `address` while the request and TLS still name the URL's own host."""
        parts = urlsplit(self.url)
        scheme = parts.scheme.lower()
        literal = f"[{address}]" if address.version == 6 else str(address)
        url = urlunsplit((scheme, f"{literal}:{_port(parts)}", parts.path or "/", parts.query, ""))
        hostname = parts.hostname or ""
        # A pooled connection must never carry another host's request: the pool is keyed by address alone.
        headers = {"host": parts.netloc, "connection": "close"}
        extensions: dict[str, Any] = {}
        if scheme == "https" and not _is_literal(hostname):
            extensions["sni_hostname"] = hostname
        return Pinned(url, headers, extensions)


async def resolve(host: str, port: int) -> list[Address]:
    """Every address `host` resolves to, through the event loop's resolver."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[Address] = []
    for *_, sockaddr in infos:
        address = ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def refusal(address: Address) -> str | None:
    """Why kaquan must not call `address`, e.g. "10.0.0.1 (private)"; None for a public address.

    IPv6 forms that carry an IPv4 address (IPv4-mapped, 6to4) are judged by that address first; NAT64
    and IPv4-compatible forms fall in ::/8, which is reserved.
    """
    judged: list[Address] = []
    if isinstance(address, IPv6Address):
        judged += [embedded for embedded in (address.ipv4_mapped, address.sixtofour) if embedded is not None]
    judged.append(address)
    for candidate in judged:
        for kind, applies in (
            ("unspecified", candidate.is_unspecified),
            ("loopback", candidate.is_loopback),
            ("link-local", candidate.is_link_local),
            ("multicast", candidate.is_multicast),
            ("private", candidate.is_private),
            ("reserved", candidate.is_reserved),
            ("not globally routable", not candidate.is_global),
        ):
            if applies:
                return f"{candidate} ({kind})"
    return None


async def check(url: str, *, allow_private: bool) -> Target:
    """The URL as a `Target`, or `CallbackUrlRefused` saying why kaquan will not call it."""
    if len(url) > MAX_URL_LENGTH:
        raise CallbackUrlRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise CallbackUrlRefused("the URL contains spaces or control characters")
    if not url.isascii():
        raise CallbackUrlRefused("the URL must be ASCII: write host names in their xn-- form and percent-encode paths")
    parts = urlsplit(url)
    if parts.scheme.lower() not in DEFAULT_PORTS:
        raise CallbackUrlRefused("only http and https URLs can receive callbacks")
    if parts.username is not None or parts.password is not None:
        raise CallbackUrlRefused("the URL must not carry credentials; the signature authenticates callbacks")
    host = parts.hostname
    if not host:
        raise CallbackUrlRefused("the URL has no host")
    try:
        port = _port(parts)
    except ValueError:
        raise CallbackUrlRefused("the URL's port is not a number from 1 to 65535", host=host) from None
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            addresses = await resolve(host, port)
    except (OSError, TimeoutError, UnicodeError):
        addresses = []
    if not addresses:
        raise CallbackUrlRefused(f"{host} does not resolve to an address", host=host)
    if not allow_private:
        for address in addresses:
            reason = refusal(address)
            if reason is not None:
                raise CallbackUrlRefused(f"{host} resolves to a non-public address: {reason}", host=host)
    return Target(url, tuple(addresses))


def _port(parts: SplitResult) -> int:
    port = DEFAULT_PORTS[parts.scheme.lower()] if parts.port is None else parts.port
    if not 1 <= port <= 65535:
        raise ValueError(port)
    return port


def _is_literal(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True
