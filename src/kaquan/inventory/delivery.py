"""Opening the codes sold to an order, for the buyer it was sold to."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.inventory.models import Batch, Code, Reveal, Segment, SegmentRange
from kaquan.inventory.vault import Vault
from kaquan.kit import clock
from kaquan.kit.db import insert_rows

_DELIVERED = ("sold", "redeemed")


@dataclass(frozen=True)
class DeliveredCode:
    code_id: int
    card_no: str | None
    secret: str
    expires_on: str | None


@dataclass(frozen=True)
class DeliveredRange:
    prefix: str
    width: int
    first: int
    last: int

    @property
    def count(self) -> int:
        return self.last - self.first + 1

    def serial(self, n: int) -> str:
        return f"{self.prefix}{n:0{self.width}d}"

    @property
    def first_code(self) -> str:
        return self.serial(self.first)

    @property
    def last_code(self) -> str:
        return self.serial(self.last)


@dataclass(frozen=True)
class Viewer:
    """Who is about to see plaintext codes, and why; every reveal is recorded."""

    who: str
    reason: str
    ip: str | None = None


async def codes_of_order(session: AsyncSession, vault: Vault, order_id: int, viewer: Viewer) -> list[DeliveredCode]:
    """Open the codes sold to an order, recording the reveal in the same transaction."""
    return (await codes_of_orders(session, vault, [order_id], viewer)).get(order_id, [])


async def codes_of_orders(
    session: AsyncSession, vault: Vault, order_ids: Sequence[int], viewer: Viewer
) -> dict[int, list[DeliveredCode]]:
    """Open the codes sold to several orders in one query, recording one reveal per order.

    The query filters on the order alone (the status is checked here): given a
    status to filter on as well, PostgreSQL may pick the stock index while its
    statistics still count most codes as available, and scan every sold code.
    """
    rows = await session.execute(SEALED_CODES.where(Code.order_id.in_(order_ids)).order_by(Code.id))
    return await _open(session, vault, rows, viewer)


async def codes_handed_out(
    session: AsyncSession, vault: Vault, handed: Mapping[int, Sequence[int]], viewer: Viewer
) -> dict[int, list[DeliveredCode]]:
    """Open codes just sold to orders (code ids by order id), found by primary key; one reveal per order.

    The group-commit path knows which codes it handed out: looking them up by
    id is planned well whatever the table's statistics say.
    """
    ids = [code_id for code_ids in handed.values() for code_id in code_ids]
    if not ids:
        return {}
    rows = await session.execute(SEALED_CODES.where(Code.id.in_(ids)).order_by(Code.id))
    opened = await _open(session, vault, rows, viewer)
    if any(order_id not in handed for order_id in opened) or sum(map(len, opened.values())) != len(ids):
        raise RuntimeError("codes handed out in this transaction are not where they were put")
    return opened


# Codes as stored (sealed) with their batch's wrapped key: what opening or masking one needs.
SEALED_CODES = select(
    Code.id,
    Code.order_id,
    Code.status,
    Code.fingerprint,
    Code.card_no,
    Code.card_no_sealed,
    Code.secret_sealed,
    Code.expires_on,
    Batch.wrapped_key,
).join(Batch, Batch.id == Code.batch_id)


async def _open(
    session: AsyncSession, vault: Vault, rows: Iterable[Any], viewer: Viewer
) -> dict[int, list[DeliveredCode]]:
    """Decrypt the delivered codes among `rows` by order, and record who saw them."""
    delivered: dict[int, list[DeliveredCode]] = {}
    for row in rows:
        if row.status not in _DELIVERED:
            continue
        box = vault.box(row.wrapped_key)
        card_no = box.open(row.card_no_sealed, row.fingerprint) if row.card_no_sealed else row.card_no
        delivered.setdefault(row.order_id, []).append(
            DeliveredCode(
                row.id,
                card_no,
                box.open(row.secret_sealed, row.fingerprint),
                row.expires_on.isoformat() if row.expires_on else None,
            )
        )
    if delivered:
        at = clock.now()
        await insert_rows(
            session,
            Reveal.__table__,  # type: ignore[arg-type]
            [
                {
                    "at": at,
                    "order_id": order_id,
                    "units": len(codes),
                    "viewer": viewer.who,
                    "reason": viewer.reason,
                    "ip": viewer.ip,
                }
                for order_id, codes in delivered.items()
            ],
        )
    return delivered


async def ranges_of_order(session: AsyncSession, order_id: int) -> list[DeliveredRange]:
    rows = await session.execute(
        select(Segment.prefix, Segment.width, SegmentRange.first_serial, SegmentRange.last_serial)
        .join(Segment, Segment.id == SegmentRange.segment_id)
        .where(SegmentRange.order_id == order_id, SegmentRange.status.in_(_DELIVERED))
        .order_by(SegmentRange.first_serial)
    )
    return [DeliveredRange(r.prefix, r.width, r.first_serial, r.last_serial) for r in rows]


def mask(secret: str) -> str:
    """Show only enough of a secret to recognise it: the last four characters."""
    return "•" * max(len(secret) - 4, 4) + secret[-4:] if len(secret) > 4 else "•" * 8
