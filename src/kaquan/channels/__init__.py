"""Channels: where orders come from besides the shop, and what each channel sells at which price.

Tables (`models`): channels, price lists, quotas, agents and their API keys; `callbacks/` owns the
callback tables. Inside:

- `pricing`: channels, their price lists and stock quotas;
- `agents/` (代理商): accounts, deposits and API keys, signed requests, orders paid from the deposit,
  refunds (see its `__init__`);
- `marketplace/`: marketplace stores, their pushed orders and order files, refunds;
- `callbacks/`: signed order callbacks to agents, with their own signing and SSRF guard;
- `aftersale` (a refund asked for any channel's order, routed to the gateway, the deposit or the
  store), `booking` (how channel sales land on the ledger), `adapters` (entry-point plug-ins),
  `schemas` (the open API's wire types), `errors`, `tasks` (outbox handlers, registered on import).

The public surface is what this module exports: the inner packages and the modules above as
namespaces, and the few types other modules name. Other modules use only that.
"""

from kaquan.channels import aftersale, agents, booking, callbacks, marketplace, pricing, schemas
from kaquan.channels import tasks as _tasks  # noqa: F401  (registers the outbox handlers)
from kaquan.channels.adapters import Adapter, ChannelAdapter, load_adapters
from kaquan.channels.errors import MissingSignatureHeader
from kaquan.channels.pricing import Channel

__all__ = [
    "Adapter",
    "Channel",
    "ChannelAdapter",
    "MissingSignatureHeader",
    "aftersale",
    "agents",
    "booking",
    "callbacks",
    "load_adapters",
    "marketplace",
    "pricing",
    "schemas",
]
