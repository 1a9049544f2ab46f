"""Agents (代理商): resellers who buy codes over the open API and pay from a prepaid deposit.

Modules: `accounts` (agents, their deposit on the ledger, API keys), `request_signing`
(KQ1-HMAC-SHA256, also used by marketplace pushes), `authentication` (checking a signed request
and its nonce), `code_encryption` (codes encrypted for the agent), `ordering` (orders paid from the
deposit, placed in batches), `refunds` (a delivered order refunded to the deposit).

The public surface is what this package exports: an agent's account as flat names, ordering,
refunds and request signing as namespaces. Other modules use only that.
"""

from kaquan.channels.agents import ordering, refunds, request_signing
from kaquan.channels.agents.accounts import (
    Agent,
    AgentKey,
    IssuedKey,
    by_code,
    create_agent,
    describe,
    funds,
    get_agent,
    issue_key,
    keys_of,
    list_agents,
    revoke_key,
    rotate_key,
    set_allowlist,
    top_up,
    update_agent,
)
from kaquan.channels.agents.authentication import AgentCaller, Authenticator, DatabaseNonces, NonceStore, RedisNonces
from kaquan.channels.agents.ordering import AgentOrder, AgentOrders

__all__ = [
    "Agent",
    "AgentCaller",
    "AgentKey",
    "AgentOrder",
    "AgentOrders",
    "Authenticator",
    "DatabaseNonces",
    "IssuedKey",
    "NonceStore",
    "RedisNonces",
    "by_code",
    "create_agent",
    "describe",
    "funds",
    "get_agent",
    "issue_key",
    "keys_of",
    "list_agents",
    "ordering",
    "refunds",
    "request_signing",
    "revoke_key",
    "rotate_key",
    "set_allowlist",
    "top_up",
    "update_agent",
]
