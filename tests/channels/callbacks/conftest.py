"""Fixtures for callbacks: a key ring, an HTTP client, a local receiver, a DNS table."""

from collections.abc import AsyncIterator
from ipaddress import IPv4Address, IPv6Address, ip_address

import httpx
import pytest
from tests.support.callback_receiver import Receiver

from kaquan.channels.callbacks import ssrf
from kaquan.kit.crypto import KeyRing, new_key


@pytest.fixture
def keyring() -> KeyRing:
    return KeyRing(new_key())


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    yield found
    await found.stop()


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names resolved from this table (other names fail to resolve); edit it to change a DNS answer."""
    table: dict[str, list[str]] = {}

    async def resolve(host: str, port: int) -> list[IPv4Address | IPv6Address]:
        if host not in table:
            raise OSError(f"{host} does not resolve")
        return [ip_address(address) for address in table[host]]

    monkeypatch.setattr(ssrf, "resolve", resolve)
    return table
