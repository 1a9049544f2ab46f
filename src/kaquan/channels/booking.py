"""How channel sales land on the ledger: which accounts, which signs.

Accounts (opened on first use):
- `agent:<code>` (credit-normal): an agent's prepaid deposit; its floor is minus the credit limit.
- `sales:<channel>:<currency>` (credit-normal): revenue per channel; for the open API one per agent,
  `sales:api:<agent>:<currency>`, so that agents never queue for one revenue row.
- `receivable:<channel>:<currency>` (debit-normal): what a marketplace owes us for its orders.
- `fees:<channel>:<currency>` (debit-normal): the commission or fee a channel keeps.
- `deposits:<currency>` (debit-normal): money agents paid in (see `agents.top_up`).
"""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import ledger
from kaquan.channels.models import Agent, Channel
from kaquan.kit.db import Database


async def _account(db: Database, session: AsyncSession, code: str, currency: str, normal: str) -> int:
    found = await ledger.account_by_code(session, code)
    if found is None:
        found = await ledger.open_account(db, session, code, currency=currency, normal=normal)  # type: ignore[arg-type]
    return found.id


async def sales_account(db: Database, session: AsyncSession, agent: Agent, currency: str) -> int:
    """The id of the account of sales to one agent (opened on first use): look it up once per batch.

    Sales are booked per agent, not to one `sales:api` account, so that agents'
    batches never queue for one shared revenue row; the API channel's revenue is
    the sum of its `sales:api:*` accounts.
    """
    return await _account(db, session, f"sales:api:{agent.code}:{currency}", currency, "credit")


@dataclass(frozen=True)
class AgentReference:
    """A ledger entry's reference as its agent reads it: the order number, or the top-up's own reference."""

    reference: str
    order_no: str | None


def as_agent_sees_it(agent: Agent, kind: str, reference: str | None) -> AgentReference:
    """Undo this module's internal prefixes: `order:<n>` and `refund:<n>` name order n; `<agent>:<ref>` a top-up."""
    stored = reference or ""
    if kind in ("order", "refund") and stored.startswith(f"{kind}:"):
        number = stored.removeprefix(f"{kind}:")
        return AgentReference(number, number)
    return AgentReference(stored.removeprefix(f"{agent.code}:"), None)


def sale(agent: Agent, sales_account_id: int, number: str, total: int) -> ledger.TransferSpec:
    """An agent's order paid from its deposit: debit the agent, credit the API channel's sales."""
    return ledger.TransferSpec(
        kind="order",
        legs=(ledger.Leg(agent.account_id, total), ledger.Leg(sales_account_id, -total)),
        reference=f"order:{number}",
        memo=f"order {number}",
    )


async def refund(db: Database, session: AsyncSession, agent: Agent, number: str, total: int) -> ledger.TransferSpec:
    """An agent's order given back: credit the agent, debit the sales it had made."""
    sales = await sales_account(db, session, agent, agent.currency)
    return ledger.TransferSpec(
        kind="refund",
        legs=(ledger.Leg(sales, total), ledger.Leg(agent.account_id, -total)),
        reference=f"refund:{number}",
        memo=f"refund of order {number}",
    )


async def channel_sale(
    db: Database, session: AsyncSession, channel: Channel, number: str, total: int, currency: str
) -> ledger.TransferSpec:
    """An order a channel collected for us (a marketplace): the channel owes the total less its fee."""
    fee = total * channel.fee_rate_bp // 10_000
    sales = await _account(db, session, f"sales:{channel.code}:{currency}", currency, "credit")
    receivable = await _account(db, session, f"receivable:{channel.code}:{currency}", currency, "debit")
    legs = [ledger.Leg(receivable, total - fee), ledger.Leg(sales, -total)]
    if fee:
        legs.append(ledger.Leg(await _account(db, session, f"fees:{channel.code}:{currency}", currency, "debit"), fee))
    return ledger.TransferSpec(
        kind="order",
        legs=tuple(leg for leg in legs if leg.debit_minor),
        reference=f"order:{number}",
        memo=f"order {number}",
    )


async def channel_refund(
    db: Database, session: AsyncSession, channel: Channel, number: str, total: int, fee: int, currency: str
) -> ledger.TransferSpec:
    """A channel sale given back (the marketplace refunds its buyer): `channel_sale` reversed, with the fee
    that was booked for it, so the channel owes us what it owed less this order."""
    sales = await _account(db, session, f"sales:{channel.code}:{currency}", currency, "credit")
    receivable = await _account(db, session, f"receivable:{channel.code}:{currency}", currency, "debit")
    legs = [ledger.Leg(sales, total), ledger.Leg(receivable, -(total - fee))]
    if fee:
        legs.append(ledger.Leg(await _account(db, session, f"fees:{channel.code}:{currency}", currency, "debit"), -fee))
    return ledger.TransferSpec(
        kind="refund",
        legs=tuple(leg for leg in legs if leg.debit_minor),
        reference=f"refund:{number}",
        memo=f"refund of order {number}",
    )
