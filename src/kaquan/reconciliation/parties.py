"""Which records a source's lines are matched with, and a store's and an agent's statement where they differ
from a bill.

A generic source (`generic:<mapping>`) is matched like a gateway's bill (by
reference, then by amount and day) against what its saved mapping's
`channel` names: a gateway's payments, a store's or an agent's orders, or
(no channel) kaquan's payments and refunds through every gateway.

Records come from the channel (`channels.marketplace.settling.reconcilable`,
`channels.agents.settling.reconcilable`): one payment per order delivered,
keyed by the marketplace order id or the agent's out_order_no, and one refund
per order refunded under the same key. Pairing is by reference only: the
gateways' passes by key and by order number, plus a refund line by the key of
the order it gives back (`merchant_ref`); never by amount and day, as a
store's or agent's line always names its order, and pairing two strangers of
the same amount would hide both.

A marketplace's export also has lines a bill has not:
- commission lines (`fee`, 平台佣金): added to the fee of the order's payment
  line before pairing, so a payment is compared with its whole commission; the
  commission line itself is `matched` when its order's payment line paired,
  else `missing_in_kaquan`;
- payout lines (`payout`, 结算打款): the money the marketplace sent to the bank
  for the lines of the same export. A payout equal to the net (amount − fee,
  refunds counting back) of the export's orders that paired is `matched` and
  clears the store's receivable through `accounting.receive_payout`: once on
  the ledger, whichever side saw it first. A confirmed settlement run that
  already posted this payout (`settlement:<run>:payout`, same amount, not
  linked to another line) is linked to; else it is booked (Dr `bank:<cur>`,
  Cr `receivable:marketplace:<store>:<cur>`, reference
  `payout:<source>:<line identity>`, once), and a settlement run confirmed
  later adopts it rather than posting its own. The item's
  `ledger_reference` names the one transfer. Any other payout is an
  `amount_mismatch` (kaquan's net against the payout) for finance.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, case, exists, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import accounting
from kaquan.channels import agents, marketplace
from kaquan.kit.db import Database
from kaquan.kit.models import UTCDateTime
from kaquan.payments import records
from kaquan.reconciliation.days import GATEWAY_SOURCES
from kaquan.reconciliation.errors import ResolutionNotSupported
from kaquan.reconciliation.mappings import column_mapping
from kaquan.reconciliation.models import ITEMS, LINES
from kaquan.reconciliation.sources import checked_source

MATCHED_KINDS = ("marketplace", "agent")
ACTOR = "reconciliation"


def is_party(source: str) -> bool:
    """A store's or an agent's own statement: each line names its order, so lines pair by reference only."""
    return source.partition(":")[0] in MATCHED_KINDS


def is_marketplace(source: str) -> bool:
    return source.startswith("marketplace:")


def check_matchable(source: str) -> None:
    checked_source(source)


async def records_of(session: AsyncSession, source: str, since: datetime, until: datetime) -> Select[Any]:
    """kaquan's records of the source in [since, until) (columns of `payments.records.RECORD_COLUMNS`, or fewer)."""
    kind, name = checked_source(source)
    if kind in GATEWAY_SOURCES:
        return records.reconcilable(source, since, until)
    if kind == "marketplace":
        return await marketplace.settling.reconcilable(session, name, since, until)
    if kind == "agent":
        return await agents.settling.reconcilable(session, name, since, until)
    channel = (await column_mapping(session, name)).channel
    if channel is None:
        return records.reconcilable(None, since, until)
    if channel.partition(":")[0] in MATCHED_KINDS:
        return await records_of(session, channel, since, until)
    return records.reconcilable(channel, since, until)


async def fold_commissions(session: AsyncSession, lines: Any) -> None:
    """Each payment line's fee plus the commission lines of its order (same merchant reference)."""
    fee_lines = lines.alias("fee_lines")
    commission = (
        select(func.coalesce(func.sum(fee_lines.c.amount_minor), 0))
        .where(
            fee_lines.c.kind == "fee",
            fee_lines.c.merchant_ref == lines.c.merchant_ref,
            fee_lines.c.merchant_ref != "",
        )
        .scalar_subquery()
    )
    await session.execute(
        update(lines).where(lines.c.kind == "payment").values(fee_minor=lines.c.fee_minor + commission)
    )


async def insert_commission_items(session: AsyncSession, source: str, lines: Any, pairs: Any, now: datetime) -> None:
    """One item per commission line of the period: matched when its order's payment line paired."""
    lc = lines.c
    payment_lines = lines.alias("payment_lines")
    paired = exists().where(
        payment_lines.c.kind == "payment",
        payment_lines.c.merchant_ref == lc.merchant_ref,
        payment_lines.c.id == pairs.c.line_id,
    )
    klass = case(
        (lc.occurrence > 0, "duplicate_line"),
        (and_(lc.merchant_ref != "", paired), "matched"),
        else_="missing_in_kaquan",
    )
    chosen = select(
        literal(source),
        lc.business_day,
        klass,
        lc.id,
        lc.currency,
        lc.amount_minor,
        lc.fee_minor,
        lc.status,
        lc.kind,
        case((klass == "matched", "auto"), else_="open"),
        literal(""),
        literal(now, UTCDateTime()),
    ).where(lc.in_scope == 1, lc.kind == "fee", ~exists().where(pairs.c.line_id == lc.id))
    names = [
        "source",
        "business_day",
        "class_",
        "line_id",
        "currency",
        "found_minor",
        "found_fee_minor",
        "found_status",
        "line_kind",
        "state",
        "note",
        "matched_at",
    ]
    await session.execute(insert(ITEMS).from_select(names, chosen))


async def settle_payouts(db: Database, session: AsyncSession, source: str, lines: Any, now: datetime) -> None:
    """Each payout line of the period against the net of its export's paired orders; a match clears the receivable."""
    lc = lines.c
    found = await session.execute(
        select(
            lc.id,
            lc.business_day,
            lc.amount_minor,
            lc.currency,
            lc.status,
            lc.occurrence,
            LINES.c.statement_id,
            LINES.c.identity,
        )
        .join(LINES, LINES.c.id == lc.id)
        .where(lc.in_scope == 1, lc.kind == "payout")
        .order_by(lc.id)
    )
    store = source.removeprefix("marketplace:")
    rows = found.all()
    linked = await linked_payouts(session, source) if rows else set()
    for line_id, day, amount, currency, status, occurrence, statement_id, identity in rows:
        net = await _paired_net(session, statement_id) if occurrence == 0 else None
        klass = "duplicate_line" if occurrence else "matched" if net == amount else "amount_mismatch"
        reference = None
        if klass == "matched" and amount > 0:
            reference = await accounting.receive_payout(
                db,
                session,
                receivable=marketplace.settling.receivable_code(store, currency),
                currency=currency,
                amount_minor=amount,
                reference=f"{source}:{identity}"[:100],
                memo=f"payout {identity} from marketplace store {store}",
                linked=linked,
                actor=ACTOR,
            )
            linked.add(reference)
        await session.execute(
            insert(ITEMS).values(
                source=source,
                business_day=day,
                class_=klass,
                line_id=line_id,
                currency=currency,
                expected_minor=net,
                found_minor=amount,
                found_fee_minor=0,
                found_status=status,
                line_kind="payout",
                state="auto" if klass == "matched" else "open",
                note="",
                ledger_reference=reference,
                matched_at=now,
            )
        )


async def linked_payouts(session: AsyncSession, source: str) -> set[str]:
    """The ledger references the source's items name: payouts booked or linked to already."""
    found = await session.execute(
        select(ITEMS.c.ledger_reference).where(ITEMS.c.source == source, ITEMS.c.ledger_reference.is_not(None))
    )
    return {str(reference) for reference in found.scalars()}


async def _paired_net(session: AsyncSession, statement_id: int) -> int:
    """What the export's paired orders come to by kaquan's records: payments net of fee, less refunds net of fee."""
    items, stored = ITEMS.c, LINES.c
    net = items.expected_minor - func.coalesce(items.expected_fee_minor, 0)
    signed = case((stored.kind == "refund", -net), else_=net)
    total = await session.execute(
        select(func.coalesce(func.sum(signed), 0))
        .select_from(ITEMS.join(LINES, stored.id == items.line_id))
        .where(
            stored.statement_id == statement_id,
            stored.kind.in_(("payment", "refund")),
            items.record_ref.is_not(None),
        )
    )
    return int(total.scalar_one())


async def resolve_money(
    db: Database,
    session: AsyncSession,
    *,
    source: str,
    line_kind: str | None,
    identity: str,
    currency: str,
    found_minor: int | None,
    resolution: str,
    actor: str,
) -> str:
    """The ledger side of resolving a marketplace or agent item; accepting a payout books what the bank received.

    Any other resolution that moves money is refused: the store's or agent's
    differences are settled at their source (a refund, a corrected order) and
    resolved here with `no_action`.
    """
    if resolution == "accept_statement" and line_kind == "payout" and is_marketplace(source) and found_minor:
        store = source.removeprefix("marketplace:")
        return await accounting.receive_payout(
            db,
            session,
            receivable=marketplace.settling.receivable_code(store, currency),
            currency=currency,
            amount_minor=found_minor,
            reference=f"{source}:{identity}"[:100],
            memo=f"payout {identity} from marketplace store {store}, accepted as paid",
            linked=await linked_payouts(session, source),
            actor=actor,
        )
    raise ResolutionNotSupported(
        f"{resolution} moves no money on {source}: only accepting a payout does; resolve with no_action",
        source=source,
        resolution=resolution,
    )
