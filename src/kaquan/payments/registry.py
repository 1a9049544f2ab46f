"""The gateways this process takes money through, by name (set up once at start, in the order offered)."""

from collections.abc import Iterable

from kaquan.payments.errors import PaymentNotFound
from kaquan.payments.gateway import Gateway

_gateways: dict[str, Gateway] = {}
_public_url = ["http://127.0.0.1:8000"]


def configure(gateways: Iterable[Gateway], *, public_url: str = "http://127.0.0.1:8000") -> None:
    """Exactly these gateways, and no other, accept notifications and refunds in this process."""
    _gateways.clear()
    for gateway in gateways:
        _gateways[gateway.name] = gateway
    _public_url[0] = public_url.rstrip("/")


def notify_url(gateway_name: str) -> str:
    """Where a gateway's provider posts its notifications about our payments and refunds."""
    return f"{_public_url[0]}/payments/{gateway_name}/notify"


def all() -> list[Gateway]:
    return list(_gateways.values())


def find(name: str) -> Gateway | None:
    return _gateways.get(name)


def get(name: str) -> Gateway:
    found = find(name)
    if found is None:
        raise PaymentNotFound(f"no payment gateway {name!r}", gateway=name)
    return found
