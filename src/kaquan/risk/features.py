"""What a decision knows about a request: its context, its subjects and the named features rules read.

A subject is one way to tell who is asking (an address, its /24 or /64 prefix, a device, a contact, a
buyer account, an agent) or what is asked for (a SKU). Each is keyed as `kind:value`, the key both the
counters and the allow/block lists use. Devices, contacts and accounts are keyed by a digest, so neither
Redis nor the decision log holds a device token or a phone number.
"""

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Address, ip_address, ip_network

from kaquan.risk.expressions import Value

WINDOWS = {"1m": 60, "1h": 3600, "24h": 86400}
SUBJECT_KINDS = ("ip", "prefix", "device", "contact", "account", "sku", "agent")
COUNTED = "orders"  # what the order paths count per subject (`ip.orders_1m`, ...)
# What each action counts (`ip.redeems_1m`), and the failures its caller reports (`RiskEngine.failed`), read at
# the next attempt (`account.redeem_failures_1h`).
COUNTED_BY_ACTION = {"redeem": "redeems", "buyer.sign_in": "sign_ins"}
FAILURES_BY_ACTION = {"redeem": "redeem_failures", "buyer.sign_in": "sign_in_failures"}
PERSON_KINDS = ("ip", "prefix", "device", "contact", "account")
ACTIONS = ("shop.order", "flash.purchase", "agent.order", "redeem", "buyer.sign_in")


def digest(value: str) -> str:
    """A stable short digest of a device token, contact or account: enough to count and list it by."""
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()[:24]


@lru_cache(maxsize=65_536)  # parsing an address costs more than the rest of a decision; buyers come back
def prefix_of(ip: str) -> str | None:
    """The /24 of an IPv4 address or the /64 of an IPv6 one (where one operator's machines sit)."""
    try:
        address = ip_address(ip)
    except ValueError:
        return None
    bits = 24 if isinstance(address, IPv4Address) else 64
    return str(ip_network(f"{address}/{bits}", strict=False))


@dataclass(frozen=True)
class RiskContext:
    """One request at the decision point. Everything but `action` is optional: a path passes what it knows.

    `device` is the raw first-party device token (digested here); `unpaid_orders`/`unpaid_units` are the
    holds the caller counted for this client; `submit_ms` is the page's own time from load to submit;
    `solution` a solved challenge the request carries. `can_hold`: the caller holds what it places for a
    person's verdict when the answer is `review` (`risk.reviews`); elsewhere review is answered as a challenge.
    """

    action: str
    ip: str | None = None
    device: str | None = None
    device_new: bool = False
    contact: str | None = None
    account: str | None = None
    sku: str | None = None
    agent: str | None = None
    quantity: int = 1
    high_demand: bool = False
    unpaid_orders: int | None = None
    unpaid_units: int | None = None
    submit_ms: int | None = None
    solution: str | None = None
    can_hold: bool = False

    def subjects(self) -> dict[str, str]:
        """kind → key of every subject this request has."""
        found: dict[str, str | None] = {
            "ip": self.ip,
            "prefix": prefix_of(self.ip) if self.ip else None,
            "device": digest(self.device) if self.device else None,
            "contact": digest(self.contact) if self.contact else None,
            "account": digest(self.account) if self.account else None,
            "sku": self.sku,
            "agent": self.agent,
        }
        return {kind: f"{kind}:{value[:100]}" for kind, value in found.items() if value}


def counter_features(counts: dict[tuple[str, str], int], what: str = COUNTED) -> dict[str, Value]:
    """(subject kind, window) → hits, as the rule names them: `ip.orders_1m`."""
    return {f"{kind}.{what}_{window}": hits for (kind, window), hits in counts.items()}


def request_features(context: RiskContext, *, high_demand_per_hour: int, sku_orders_1h: int) -> dict[str, Value]:
    return {
        "request.action": context.action,
        "order.quantity": context.quantity,
        "sku.high_demand": context.high_demand or sku_orders_1h >= high_demand_per_hour,
        "device.new": context.device_new or context.device is None,
        "holds.unpaid_orders": context.unpaid_orders,
        "holds.unpaid_units": context.unpaid_units,
        "page.submit_ms": context.submit_ms,
    }


FEATURES: dict[str, str] = {
    **{
        f"{kind}.{COUNTED}_{window}": f"{COUNTED} attempts of this {kind} in the last {window} (fixed window)"
        for kind in SUBJECT_KINDS
        for window in WINDOWS
    },
    **{
        f"{kind}.{what}_{window}": f"{meaning} of this {kind} in the last {window} (fixed window)"
        for what, meaning in (
            ("redeems", "redemption attempts"),
            ("redeem_failures", "failed redemptions (unknown, used or locked-out codes)"),
            ("sign_ins", "one-time sign-in codes asked for"),
            ("sign_in_failures", "wrong or expired one-time codes"),
        )
        for kind in PERSON_KINDS
        for window in WINDOWS
    },
    "request.action": "what is asked: " + ", ".join(repr(a) for a in ACTIONS),
    "order.quantity": "units asked for",
    "sku.high_demand": "a flash sale, or a SKU ordered at least KAQUAN_RISK_HIGH_DEMAND_PER_HOUR times this hour",
    "device.new": "the request carried no device token (a fresh cookie)",
    "holds.unpaid_orders": "unpaid orders this client holds now (shop orders; null elsewhere)",
    "holds.unpaid_units": "units this client's unpaid orders hold now (shop orders; null elsewhere)",
    "page.submit_ms": "milliseconds from page load to submit, when the page sent it (null otherwise)",
}
"""Every name a rule may use, with what it means (shown by `kaquan risk rules features` and docs/risk.md)."""
