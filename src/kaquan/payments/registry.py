"""The gateways this process knows, by name (set up once at start)."""

from kaquan.payments.errors import PaymentNotFound
from kaquan.payments.gateway import Gateway

_gateways: dict[str, Gateway] = {}


def register(gateway: Gateway) -> None:
    _gateways[gateway.name] = gateway


def get(name: str) -> Gateway:
    try:
        return _gateways[name]
    except KeyError:
        raise PaymentNotFound(f"no payment gateway {name!r}", gateway=name) from None
