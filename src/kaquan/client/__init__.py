"""kaquan's open API client for agents (代理商).

Self-contained on purpose: it needs httpx and cryptography and nothing else of
kaquan, so an agent may `pip install kaquan` or copy this folder into its own code
(its imports are relative: the copy works under any package name).

    from kaquan.client import AgentClient

    with AgentClient("https://shop.example", key_id, secret) as kq:
        order = kq.place_order("A-0001", "NETFLIX-1M", 2)
        for code in order.codes:
            print(code.card_no, code.secret)

docs/open-api.md describes the protocol this speaks.
"""

from .agent import AgentClient, AsyncAgentClient
from .callbacks import callback_order, verify_callback
from .models import (
    ApiError,
    Balance,
    CallbackRejected,
    Code,
    LedgerEntry,
    NewOrder,
    Order,
    Product,
    Statement,
    StatementFile,
    StatementLine,
)

__all__ = [
    "AgentClient",
    "ApiError",
    "AsyncAgentClient",
    "Balance",
    "CallbackRejected",
    "Code",
    "LedgerEntry",
    "NewOrder",
    "Order",
    "Product",
    "Statement",
    "StatementFile",
    "StatementLine",
    "callback_order",
    "verify_callback",
]
