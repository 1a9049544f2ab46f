"""Claiming codes for many orders in one statement: the inventory side of group commit.

A batch claims every code it needs at once (locked, skipping rows other
transactions hold), then hands them to its orders with one UPDATE per chunk
that names each code's new holder. The UPDATE re-checks the source state, so a
code is moved only from where the claim found it; a short count means someone
broke the rules and the whole batch rolls back.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.inventory import lifecycle
from kaquan.inventory.claims import allocation
from kaquan.inventory.errors import IllegalTransition
from kaquan.inventory.models import Batch, Code, Warehouse
from kaquan.kit import clock
from kaquan.kit.db import Database, bulk_update_by_id
from kaquan.kit.errors import BadInput

_CHUNK = 500


@dataclass(frozen=True)
class Handout:
    """Codes going to one holder (an order)."""

    holder: int
    code_ids: tuple[int, ...]


async def warehouse_ids(session: AsyncSession, codes: Sequence[str]) -> list[int]:
    """The ids of the warehouses named by `codes`, in the same order; an unknown code is bad input."""
    found = dict((await session.execute(select(Warehouse.code, Warehouse.id).where(Warehouse.code.in_(codes)))).all())
    unknown = [code for code in codes if code not in found]
    if unknown:
        raise BadInput(f"no warehouse {unknown[0]!r}", field="warehouses", unknown=unknown)
    return [found[code] for code in codes]


async def claim_available(
    db: Database, session: AsyncSession, sku_id: int, quantity: int, *, warehouses: Sequence[int] | None = None
) -> list[int]:
    """Up to `quantity` available codes of the SKU, locked for this transaction, in allocation order."""
    return await allocation.claim_codes(db, session, sku_id, quantity, warehouses=warehouses)


async def claim_held(db: Database, session: AsyncSession, holder: int, quantity: int) -> list[int]:
    """Up to `quantity` codes reserved by `holder` (e.g. a flash-sale allotment), locked for this transaction.

    Codes of a quarantined (leaked) batch are never handed on, even when a holder still has them.
    """
    leaked = select(Batch.id).where(Batch.quarantined_at.is_not(None))
    stmt = (
        select(Code.id)
        .where(Code.order_id == holder, Code.status == literal_column("'reserved'"), Code.batch_id.not_in(leaked))
        .order_by(Code.expires_on.asc().nulls_last(), Code.id)
        .limit(quantity)
    )
    return list((await session.execute(db.claim(stmt))).scalars())


async def hand_out(
    session: AsyncSession,
    handouts: Sequence[Handout],
    *,
    source: str,
    target: str,
    hold_until: datetime | None = None,
) -> None:
    """Move claimed codes from `source` to `target`, each to its holder, in a few statements.

    `source` == `target` == "reserved" passes held codes from one holder to another (an allotment to its buyers).
    """
    if source != target:
        lifecycle.check(source, target)
    owner = {code_id: handout.holder for handout in handouts for code_id in handout.code_ids}
    ids = list(owner)
    sold_at = clock.now() if target == "sold" else None
    moves = {"status": target, "hold_until": hold_until, "sold_at": sold_at}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        moved = await bulk_update_by_id(
            session,
            Code.__table__,  # type: ignore[arg-type]
            "order_id",
            {code_id: owner[code_id] for code_id in chunk},
            where=[Code.status == source],
            values=moves,
        )
        if moved != len(chunk):
            raise IllegalTransition(
                f"{len(chunk) - moved} claimed code(s) left {source} state under a batch",
                expected=len(chunk),
            )
