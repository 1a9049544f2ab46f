"""Every permission an admin endpoint can require, and which role holds which.

Each admin route declares exactly one permission (`web.deps.require`); a test
walks the route table and fails on any admin route without one.
"""

from enum import StrEnum


class Permission(StrEnum):
    CATALOG_READ = "catalog.read"
    CATALOG_WRITE = "catalog.write"
    STOCK_READ = "stock.read"
    STOCK_WRITE = "stock.write"
    ORDERS_READ = "orders.read"
    ORDERS_SUPPORT = "orders.support"
    # After sale: support asks for a refund, finance approves it (or refunds at once: it may approve).
    REFUNDS_REQUEST = "refunds.request"
    REFUNDS_APPROVE = "refunds.approve"
    CODES_REVEAL = "codes.reveal"
    LEAKS_TRACE = "leaks.trace"
    REDEEM = "redeem"
    CHANNELS_READ = "channels.read"
    CHANNELS_WRITE = "channels.write"
    FLASHSALE_READ = "flashsale.read"
    FLASHSALE_WRITE = "flashsale.write"
    FINANCE_READ = "finance.read"
    FINANCE_WRITE = "finance.write"
    AUDIT_READ = "audit.read"
    # Risk control: read decisions, rules and lists, backtest a rule; change rules and lists.
    RISK_READ = "risk.read"
    RISK_WRITE = "risk.write"
    USERS_MANAGE = "users.manage"
    # One's own sign-in: profile, password, two-factor, own API tokens. Every role holds it,
    # so an auditor who may change nothing else can still rotate its own password.
    ACCOUNT_SELF = "account.self"


_READ = frozenset(p for p in Permission if p.value.endswith(".read"))
_SELF = frozenset({Permission.ACCOUNT_SELF})

ROLES: dict[str, frozenset[Permission]] = {
    "owner": frozenset(Permission),
    "operator": frozenset(
        {
            Permission.CATALOG_READ,
            Permission.CATALOG_WRITE,
            Permission.STOCK_READ,
            Permission.STOCK_WRITE,
            Permission.ORDERS_READ,
            Permission.REDEEM,
            Permission.CHANNELS_READ,
            Permission.CHANNELS_WRITE,
            Permission.FLASHSALE_READ,
            Permission.FLASHSALE_WRITE,
            Permission.RISK_READ,
            Permission.RISK_WRITE,
        }
    )
    | _SELF,
    "finance": frozenset(
        {
            Permission.CATALOG_READ,
            Permission.STOCK_READ,
            Permission.ORDERS_READ,
            Permission.FINANCE_READ,
            Permission.FINANCE_WRITE,
            Permission.CHANNELS_READ,
            Permission.REFUNDS_REQUEST,
            Permission.REFUNDS_APPROVE,
        }
    )
    | _SELF,
    "support": frozenset(
        {
            Permission.CATALOG_READ,
            Permission.STOCK_READ,
            Permission.ORDERS_READ,
            Permission.ORDERS_SUPPORT,
            Permission.REFUNDS_REQUEST,
            Permission.REDEEM,
            Permission.CHANNELS_READ,
            Permission.RISK_READ,
        }
    )
    | _SELF,
    "auditor": _READ | _SELF,
}
