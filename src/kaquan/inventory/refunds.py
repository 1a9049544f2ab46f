"""Taking a refunded order's codes back: sold → voided, for good.

A code that was handed out cannot be trusted to be unused elsewhere, so a
refund never returns it to stock; voided units still count in the stock
equation (available + reserved + sold + voided = imported).
"""

from collections import Counter

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.inventory import lifecycle
from kaquan.inventory.models import Code
from kaquan.kit.db import Database


async def locked_code_states(db: Database, session: AsyncSession, order_id: int) -> Counter[str]:
    """How many of the order's codes are in each state, with their rows locked (in id order) until commit.

    The lock makes the answer hold until the caller acts on it: a redemption
    (which locks its code) either finished before and is counted here, or waits
    and then finds its code voided.
    """
    stmt = db.lock(select(Code.status).where(Code.order_id == order_id).order_by(Code.id))
    return Counter((await session.execute(stmt)).scalars())


async def void_sold_codes(session: AsyncSession, order_id: int, *, quantity: int) -> None:
    """Void the order's sold codes; exactly `quantity` must move, or the whole transaction rolls back."""
    await lifecycle.transition(
        session, Code, Code.order_id == order_id, source="sold", target="voided", expected=quantity
    )
