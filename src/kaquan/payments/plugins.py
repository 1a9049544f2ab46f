"""Gateway plugins: payment providers plugged in through Python entry points, like channel adapters.

A plugin is an object with a `name` and two factories, published under the
`kaquan.gateways` entry-point group:

    [project.entry-points."kaquan.gateways"]
    alipay = "kaquan.payments.alipay.plugin:plugin"

`configured(setup)` returns the gateway when the merchant's credentials are in
the environment (or key files it names) and None when they are not: a server
takes money through every configured gateway at once. `simulated(setup)`
returns a `Simulation`: a local simulator of the provider (an ASGI app that
speaks the provider's protocol from the provider's side, with its own keys)
and a gateway wired to it, for demos (`KAQUAN_GATEWAY_SIMULATORS=1`, which
`make run` sets) and tests. No machine here reaches a real provider.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

import httpx
from starlette.types import ASGIApp

from kaquan.kit.config import Settings
from kaquan.payments.gateway import Gateway

GROUP = "kaquan.gateways"


@dataclass(frozen=True)
class GatewaySetup:
    """What a plugin's factories get: the settings, where kaquan is reached, and how to reach the provider.

    `transport` replaces the network for the gateway's HTTP client (tests pass
    an `httpx.ASGITransport` around a simulator); `state_dir` is where a
    simulator keeps its key pair between runs.
    """

    settings: Settings
    public_url: str
    state_dir: Path
    transport: httpx.AsyncBaseTransport | None = None
    notify_transport: httpx.AsyncBaseTransport | None = None  # how a simulator reaches kaquan's notify URL


@dataclass(frozen=True)
class SentNotification:
    """One notification a simulator posted to kaquan, as sent, and kaquan's HTTP answer."""

    url: str
    headers: dict[str, str]
    body: bytes
    status_code: int
    answer: bytes


class ProviderSimulator(Protocol):
    """A provider, simulated from its own side: its keys, its trade state, its notifications and bills.

    `app` serves the provider's API (verifying the merchant's signed requests)
    and the buyer's pages (pay page, QR landing). `pay` is the buyer paying a
    trade: the trade succeeds and, unless `notify` is False (a lost
    notification), the provider notifies kaquan. `resend` posts a notification
    again, exactly as sent (a duplicate); `sent` lists all of them in order.
    """

    app: ASGIApp

    async def pay(self, payment_token: str, *, notify: bool = True) -> SentNotification | None: ...

    async def resend(self, sent: SentNotification) -> SentNotification: ...

    async def drain(self) -> None:
        """Wait until every notification the provider queued (refund notifications come later) was posted."""
        ...

    def sent(self) -> list[SentNotification]: ...

    def bill(self, day: date) -> bytes: ...


@dataclass(frozen=True)
class Simulation:
    """A provider's simulator (mounted at `mount_path` in a demo server) and a gateway that talks to it."""

    gateway: Gateway
    provider: ProviderSimulator
    mount_path: str  # "/sim/<name>"


class GatewayPlugin(Protocol):
    name: str
    title: str  # shown to buyers at checkout, zh-CN: "支付宝", "微信支付"

    def configured(self, setup: GatewaySetup) -> Gateway | None: ...

    def simulated(self, setup: GatewaySetup) -> Simulation: ...


@cache
def load_plugins() -> tuple[GatewayPlugin, ...]:
    """Every installed gateway plugin, by entry-point name (a broken plugin fails loudly at start)."""
    found = sorted(entry_points(group=GROUP), key=lambda point: point.name)
    return tuple(point.load() for point in found)


def http_client(setup: GatewaySetup, base_url: str, *, timeout_s: float = 10.0) -> httpx.AsyncClient:
    """The client an adapter calls its provider with: bounded time, and the test transport when one is given."""
    return httpx.AsyncClient(base_url=base_url, transport=setup.transport, timeout=timeout_s)


Factory = Callable[[GatewaySetup], Gateway | None]
