"""Custody of code secrets: who may see a plaintext code, and what happens when codes leak.

A secret is shown in plaintext only to the buyer it was sold to (through the
order lookup) or to an admin holding the reveal permission who gives a reason;
every such reveal is an `inventory_reveals` row and, for admins, an audit entry.
Everywhere else an admin sees codes masked.

A leaked batch is quarantined: its available codes are voided at once, and its
codes still held by unpaid orders are voided when those orders release them
(`allocation.release` consults the batch), so none of them is sold again.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.audit import service as audit
from kaquan.inventory import lifecycle
from kaquan.inventory.delivery import (
    SEALED_CODES,
    DeliveredCode,
    DeliveredRange,
    Viewer,
    codes_of_order,
    mask,
    ranges_of_order,
)
from kaquan.inventory.models import Batch, Code, Segment, SegmentRange
from kaquan.inventory.vault import Vault
from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.kit.errors import BadInput, Conflict, NotFound

MAX_REASON = 200
_DELIVERED = ("sold", "redeemed")
_RANGE_SIZE = SegmentRange.last_serial - SegmentRange.first_serial + 1


class ReasonRequired(BadInput):
    """A plaintext reveal or a quarantine must say why, briefly."""

    code = "reason_required"


class NothingToReveal(Conflict):
    code = "nothing_to_reveal"


class BatchNotFound(NotFound):
    code = "batch_not_found"


def checked_reason(reason: str) -> str:
    reason = " ".join(reason.split())
    if not reason:
        raise ReasonRequired("say why you need to see these codes (a reason is required)")
    if len(reason) > MAX_REASON:
        raise ReasonRequired(f"the reason is {len(reason)} characters long; at most {MAX_REASON}", max=MAX_REASON)
    return reason


@dataclass(frozen=True)
class Revealed:
    codes: list[DeliveredCode]
    ranges: list[DeliveredRange]


async def reveal(
    session: AsyncSession,
    vault: Vault,
    order_id: int,
    *,
    order_number: str,
    actor: str,
    reason: str,
    ip: str | None,
) -> Revealed:
    """Open an order's codes for an admin: the reveal row and the audit entry go in the same transaction.

    The audit entry says who, why, which order and how many codes; never a secret.
    """
    reason = checked_reason(reason)
    codes = await codes_of_order(session, vault, order_id, Viewer(actor, reason, ip))
    ranges = await ranges_of_order(session, order_id)
    if not codes and not ranges:
        raise NothingToReveal(f"order {order_number} has no delivered codes to reveal", order=order_number)
    await audit.record(
        session,
        actor,
        "codes.revealed",
        target=f"order:{order_number}",
        after={"codes": len(codes), "serials": sum(r.count for r in ranges), "reason": reason},
        ip=ip,
    )
    return Revealed(codes, ranges)


@dataclass(frozen=True)
class MaskedCode:
    code_id: int
    card_no: str | None
    secret: str
    status: str
    expires_on: str | None


async def masked_codes(session: AsyncSession, vault: Vault, order_id: int) -> list[MaskedCode]:
    """An order's codes as every admin may see them: the last four characters, no reveal."""
    rows = await session.execute(SEALED_CODES.where(Code.order_id == order_id).order_by(Code.id))
    masked = []
    for row in rows:
        box = vault.box(row.wrapped_key)
        card_no = mask(box.open(row.card_no_sealed, row.fingerprint)) if row.card_no_sealed else row.card_no
        masked.append(
            MaskedCode(
                row.id,
                card_no,
                mask(box.open(row.secret_sealed, row.fingerprint)),
                row.status,
                row.expires_on.isoformat() if row.expires_on else None,
            )
        )
    return masked


@dataclass(frozen=True)
class Quarantined:
    batch_id: int
    quarantined_at: datetime
    already: bool
    voided: int
    held_by_unpaid_orders: int
    sold: int


async def quarantine(
    db: Database, session: AsyncSession, batch_id: int, *, actor: str, reason: str, ip: str | None = None
) -> Quarantined:
    """Void a batch's available units and mark it so units released later are voided too.

    Idempotent: a second call voids whatever came back meanwhile (nothing, normally).
    The batch row is locked for update; `allocation.release` share-locks it, so the
    two never interleave.
    """
    reason = checked_reason(reason)
    batch = (await session.execute(db.lock(select(Batch).where(Batch.id == batch_id)))).scalar_one_or_none()
    if batch is None:
        raise BatchNotFound(f"no batch {batch_id}", batch_id=batch_id)
    already = batch.quarantined_at is not None
    if not already:
        batch.quarantined_at = clock.now()
        await session.flush()
    if batch.kind == "segment":
        voided, held, sold = await _void_ranges(session, batch_id)
    else:
        voided = await lifecycle.transition(
            session, Code, Code.batch_id == batch_id, source="available", target="voided"
        )
        held, sold = await _code_counts(session, batch_id)
    await audit.record(
        session,
        actor,
        "batch.quarantined",
        target=f"batch:{batch_id}",
        before={"quarantined": already, "available": voided},
        after={"quarantined": True, "voided": voided, "reserved": held, "sold": sold, "reason": reason},
        ip=ip,
    )
    return Quarantined(batch_id, batch.quarantined_at, already, voided, held, sold)


async def _code_counts(session: AsyncSession, batch_id: int) -> tuple[int, int]:
    rows = await session.execute(
        select(Code.status, func.count()).where(Code.batch_id == batch_id).group_by(Code.status)
    )
    counts = {status: int(n) for status, n in rows.all()}
    return counts.get("reserved", 0), counts.get("sold", 0) + counts.get("redeemed", 0)


async def _void_ranges(session: AsyncSession, batch_id: int) -> tuple[int, int, int]:
    in_batch = SegmentRange.segment_id.in_(select(Segment.id).where(Segment.batch_id == batch_id))
    rows = await session.execute(
        select(SegmentRange.status, func.sum(_RANGE_SIZE)).where(in_batch).group_by(SegmentRange.status)
    )
    units = {status: int(n) for status, n in rows.all()}
    await lifecycle.transition(session, SegmentRange, in_batch, source="available", target="voided")
    return (
        units.get("available", 0),
        units.get("reserved", 0),
        units.get("sold", 0) + units.get("redeemed", 0),
    )
