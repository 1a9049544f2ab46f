"""The code lifecycle, defined once: available → reserved → sold → (redeemed | voided).

Every status change of a code or segment range goes through `transition`, which
updates only rows in the allowed source state and checks that exactly the
expected number of units moved. A mismatch is a broken invariant and rolls the
whole transaction back.
"""

from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.inventory.errors import IllegalTransition
from kaquan.inventory.models import Code, SegmentRange

ALLOWED: dict[str, frozenset[str]] = {
    "available": frozenset({"reserved", "sold", "voided"}),
    "reserved": frozenset({"available", "sold"}),
    "sold": frozenset({"redeemed", "voided"}),
    "redeemed": frozenset(),
    "voided": frozenset(),
}


def check(source: str, target: str) -> None:
    if target not in ALLOWED[source]:
        raise IllegalTransition(f"a code cannot go from {source} to {target}", source=source, target=target)


async def transition(
    session: AsyncSession,
    model: type[Code] | type[SegmentRange],
    where: ColumnElement[bool],
    *,
    source: str,
    target: str,
    expected: int | None = None,
    **values: Any,
) -> int:
    """Move every matching row from `source` to `target`; returns how many rows moved."""
    check(source, target)
    result = await session.execute(
        update(model)
        .where(where, model.status == source)
        .values(status=target, **values)
        .execution_options(synchronize_session=False)
    )
    moved: int = result.rowcount  # type: ignore[attr-defined]
    if expected is not None and moved != expected:
        raise IllegalTransition(
            f"expected {expected} row(s) to go from {source} to {target}, {moved} did",
            source=source,
            target=target,
            expected=expected,
            moved=moved,
        )
    return moved
