"""Marketplace stores (a marketplace collected the buyer's money; kaquan delivers the codes).

Modules: `stores` (stores, their push secrets, pushed orders delivered and booked), `order_files`
(the marketplace's order export read and delivered in batches), `refunds` (a marketplace order
refunded: its codes taken back and the store's receivable reversed).

The public surface is what this package exports: stores and pushes as flat names, order files as a
namespace. Other modules use only that.
"""

from kaquan.channels.marketplace import order_files
from kaquan.channels.marketplace.stores import (
    CHANNEL_PREFIX,
    Delivered,
    MarketplaceOrderRequest,
    StoreCaller,
    StoreVerifier,
    add_store,
    channel_of,
    get_store,
    list_stores,
    order_out,
    push_order,
    reveal_secret,
    rotate_secret,
)

__all__ = [
    "CHANNEL_PREFIX",
    "Delivered",
    "MarketplaceOrderRequest",
    "StoreCaller",
    "StoreVerifier",
    "add_store",
    "channel_of",
    "get_store",
    "list_stores",
    "order_files",
    "order_out",
    "push_order",
    "reveal_secret",
    "rotate_secret",
]
