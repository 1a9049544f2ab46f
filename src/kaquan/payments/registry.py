"""The gateways this process knows, by name (set up once at start)."""

from collections.abc import Iterable

from kaquan.payments.errors import PaymentNotFound
from kaquan.payments.gateway import Gateway

_gateways: dict[str, Gateway] = {}


def configure(gateways: Iterable[Gateway]) -> None:
    """Exactly these gateways, and no other, accept notifications and refunds in this process."""
    _gateways.clear()
    for gateway in gateways:
        _gateways[gateway.name] = gateway


def find(name: str) -> Gateway | None:
    return _gateways.get(name)


def get(name: str) -> Gateway:
    found = find(name)
    if found is None:
        raise PaymentNotFound(f"no payment gateway {name!r}", gateway=name)
    return found
