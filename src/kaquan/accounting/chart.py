"""The chart of accounts of sales through gateways (docs/accounting.md), and the kinds and references booked.

Every account is opened on first use. Codes:
- `receivable:gateway:<gateway>:<cur>` (debit-normal): what a gateway holds for us, net of its fee.
- `fees:gateway:<gateway>:<cur>` (debit-normal, expense): the gateway's service fee.
- `sales:<channel>:<cur>` (credit-normal, revenue): the order's own channel ("shop" for shop and flash sales).
- `cogs:<cur>` (debit-normal, expense): the cost of the codes handed out.
- `inventory:<cur>` (debit-normal, asset): stock at cost; credited as codes are handed out.
- `suspense:gateway:<gateway>:<cur>` (credit-normal): money a gateway's statement shows that kaquan cannot
  place yet (an unknown receipt, a difference accepted while it is looked into); cleared by later adjustments.
- `writeoff:gateway:<gateway>:<cur>` (debit-normal, expense): differences with a gateway written off.
- `bank:<cur>` (debit-normal, asset): money received at the bank from a counterparty's payout (`payouts`).
"""

from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import ledger
from kaquan.kit.db import Database

PAYMENT, REFUND, CHARGEBACK, COGS = "payment", "payment_refund", "chargeback", "cogs"
# A dispute the merchant won: the chargeback's money given back (`dispute_won:<chargeback_no>`).
DISPUTE_WON = "dispute_won"
# The channels' own kinds (channels.booking): a deposit or marketplace sale, and its refund.
CHANNEL_SALE, CHANNEL_REFUND = "order", "refund"
KINDS = (PAYMENT, REFUND, CHARGEBACK, DISPUTE_WON, COGS, CHANNEL_SALE, CHANNEL_REFUND)
# A reconciliation difference settled on the ledger (`adjusting.book_adjustment`); it never touches sales.
ADJUSTMENT = "reconciliation"
# A counterparty's payout received at the bank, clearing its receivable (`payouts.book_payout`).
PAYOUT = "payout"
# The same payout posted by a confirmed settlement run (`settlement:<run>:payout`, docs/settlement.md):
# a store's payout is on the ledger under one of the two kinds, never both (`payouts.receive_payout`).
SETTLEMENT_PAYOUT = "settlement_payout"
PREFIX = {PAYMENT: "payment:", REFUND: "refund:", CHARGEBACK: "chargeback:", DISPUTE_WON: "dispute_won:", COGS: "cogs:"}
PREFIX |= {CHANNEL_SALE: "order:", CHANNEL_REFUND: "refund:"}


def receivable(gateway: str, currency: str) -> str:
    return f"receivable:gateway:{gateway}:{currency}"


def fees(gateway: str, currency: str) -> str:
    return f"fees:gateway:{gateway}:{currency}"


def sales(channel: str, currency: str) -> str:
    return f"sales:{channel}:{currency}"


def suspense(gateway: str, currency: str) -> str:
    return f"suspense:gateway:{gateway}:{currency}"


def writeoff(gateway: str, currency: str) -> str:
    return f"writeoff:gateway:{gateway}:{currency}"


def bank(currency: str) -> str:
    return f"bank:{currency}"


def cogs(currency: str) -> str:
    return f"cogs:{currency}"


def inventory(currency: str) -> str:
    return f"inventory:{currency}"


def normal_of(code: str) -> Literal["debit", "credit"]:
    return "credit" if code.startswith(("sales:", "suspense:")) else "debit"


async def account_ids(db: Database, session: AsyncSession, currencies: dict[str, str]) -> dict[str, int]:
    """The ids of the accounts named (code → currency), in one look-up; those not open yet are opened, in code
    order (two first bookings opening the same new accounts wait for each other, never deadlock)."""
    found = await ledger.account_ids_by_code(session, currencies)
    for code in sorted(set(currencies) - set(found)):
        found[code] = await account_id(db, session, code, currencies[code])
    return found


async def account_id(db: Database, session: AsyncSession, code: str, currency: str) -> int:
    """The id of the account `code`, opened on first use (a look-up first: opening writes)."""
    found = await ledger.account_by_code(session, code)
    if found is None:
        found = await ledger.open_account(db, session, code, currency=currency, normal=normal_of(code))
    return found.id
