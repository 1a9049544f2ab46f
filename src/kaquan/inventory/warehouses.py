"""Warehouses and the stock transfers between them.

A warehouse is one of our own (main, backup) or consignment stock held at an
agent. Codes and serial ranges carry the warehouse they sit in; a transfer moves
available units from one warehouse to another and is recorded, so stock per
warehouse keeps adding up: imported = batches into it + transfers in - transfers out.
"""

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from kaquan.audit import service as audit
from kaquan.catalog import service as catalog
from kaquan.inventory.claims import allocation
from kaquan.inventory.errors import OutOfStock, WarehouseNotFound
from kaquan.inventory.models import WAREHOUSE_KINDS, StockTransfer
from kaquan.inventory.models import Warehouse as Warehouse
from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.kit.errors import BadInput, Conflict

MAX_REASON = 200
MAX_NAME = 200
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")


class WarehouseExists(Conflict):
    code = "warehouse_exists"


class BadWarehouse(BadInput):
    """A warehouse's code, name, kind or consignee is not acceptable."""

    code = "bad_warehouse"


class SameWarehouse(BadInput):
    """A transfer (or refill rule) names one warehouse as both source and target."""

    code = "same_warehouse"


class BadUnits(BadInput):
    code = "bad_units"


class ReasonRequired(BadInput):
    code = "reason_required"


class WarehouseOutOfStock(OutOfStock):
    """The source warehouse holds fewer available units than a transfer asks to move."""

    def __init__(self, sku_id: int, warehouse: str, wanted: int, available: int) -> None:
        Conflict.__init__(
            self,
            f"SKU {sku_id}: {wanted} wanted from warehouse {warehouse!r}, {available} available there",
            sku_id=sku_id,
            warehouse=warehouse,
            wanted=wanted,
            available=available,
        )


async def create_warehouse(
    db: Database,
    session: AsyncSession,
    code: str,
    name: str,
    *,
    kind: str = "own",
    consignee: str | None = None,
    actor: str,
    ip: str | None = None,
) -> Warehouse:
    """Add a warehouse; a consignment warehouse may name who holds its stock (an agent, a store)."""
    code, name = code.strip(), " ".join(name.split())
    consignee = " ".join(consignee.split()) if consignee else None
    if not _CODE.fullmatch(code):
        raise BadWarehouse(
            "a warehouse code is 1-32 letters, digits, '.', '_' or '-', starting with a letter or digit",
            field="code",
            value=code,
        )
    if not name or len(name) > MAX_NAME:
        raise BadWarehouse(f"a warehouse needs a name of 1-{MAX_NAME} characters", field="name")
    if kind not in WAREHOUSE_KINDS:
        raise BadWarehouse(f"a warehouse is of kind {' or '.join(WAREHOUSE_KINDS)}", field="kind", value=kind)
    if consignee is not None and (kind != "consignment" or len(consignee) > MAX_NAME):
        raise BadWarehouse(
            f"only a consignment warehouse names a consignee, of at most {MAX_NAME} characters", field="consignee"
        )
    inserted = await session.execute(
        db.insert(Warehouse.__table__)  # type: ignore[arg-type]
        .values(code=code, name=name, kind=kind, consignee=consignee)
        .on_conflict_do_nothing(index_elements=["code"])
        .returning(Warehouse.__table__.c.id)
    )
    if inserted.scalar_one_or_none() is None:
        raise WarehouseExists(f"a warehouse {code!r} exists already", warehouse=code)
    allocation.WAREHOUSES.clear()
    warehouse = await get_warehouse(session, code)
    await audit.record(
        session,
        actor,
        "warehouse.created",
        target=f"warehouse:{code}",
        after={"code": code, "name": name, "kind": kind, "consignee": consignee},
        ip=ip,
    )
    return warehouse


async def list_warehouses(session: AsyncSession) -> list[Warehouse]:
    return list((await session.execute(select(Warehouse).order_by(Warehouse.id))).scalars())


async def get_warehouse(session: AsyncSession, ref: int | str) -> Warehouse:
    """A warehouse by id or by code."""
    where = Warehouse.id == ref if isinstance(ref, int) else Warehouse.code == ref
    found = (await session.execute(select(Warehouse).where(where))).scalar_one_or_none()
    if found is None:
        raise WarehouseNotFound(f"no warehouse {ref!r}", warehouse=ref)
    return found


@dataclass(frozen=True)
class Transfer:
    """A recorded transfer, with its warehouses by code."""

    id: int
    sku_id: int
    from_warehouse: str
    to_warehouse: str
    units: int
    reason: str
    actor: str
    at: datetime
    rule_id: int | None


async def transfer_stock(
    db: Database,
    session: AsyncSession,
    sku_id: int,
    from_wh: int,
    to_wh: int,
    units: int,
    *,
    actor: str,
    reason: str,
    ip: str | None = None,
) -> Transfer:
    """An admin moves `units` available units of a SKU between warehouses: all of them, or nothing.

    Refused (and nothing changes) when the source holds fewer available units; audited.
    """
    reason = " ".join(reason.split())
    if not reason or len(reason) > MAX_REASON:
        raise ReasonRequired(f"say why stock moves, in 1-{MAX_REASON} characters", max=MAX_REASON)
    if units <= 0:
        raise BadUnits(f"a transfer moves at least one unit, not {units}", units=units)
    if from_wh == to_wh:
        raise SameWarehouse("a transfer needs two different warehouses", warehouse=from_wh)
    sku = await catalog.get_sku(session, sku_id)
    source, target = await get_warehouse(session, from_wh), await get_warehouse(session, to_wh)
    try:
        await allocation.relocate(db, session, sku, units, source=source.id, target=target.id, exact=True)
    except OutOfStock as exc:
        raise WarehouseOutOfStock(sku.id, source.code, units, exc.details["available"]) from None
    transfer = await record_transfer(session, sku.id, source, target, units, actor=actor, reason=reason)
    await audit.record(
        session,
        actor,
        "stock.transferred",
        target=f"sku:{sku.code}",
        after={"transfer": transfer.id, "from": source.code, "to": target.code, "units": units, "reason": reason},
        ip=ip,
    )
    return transfer


async def record_transfer(
    session: AsyncSession,
    sku_id: int,
    source: Warehouse,
    target: Warehouse,
    units: int,
    *,
    actor: str,
    reason: str,
    rule_id: int | None = None,
) -> Transfer:
    """Record units already moved by `allocation.relocate`, in the same transaction."""
    row = StockTransfer(
        sku_id=sku_id,
        from_warehouse_id=source.id,
        to_warehouse_id=target.id,
        units=units,
        reason=reason[:MAX_REASON],
        actor=actor,
        at=clock.now(),
        rule_id=rule_id,
    )
    session.add(row)
    await session.flush()
    return Transfer(row.id, sku_id, source.code, target.code, units, row.reason, actor, row.at, rule_id)


async def list_transfers(
    session: AsyncSession, *, sku_id: int | None = None, warehouse_id: int | None = None, limit: int = 100
) -> list[Transfer]:
    """Transfers newest first, optionally of one SKU and/or into or out of one warehouse."""
    source, target = aliased(Warehouse), aliased(Warehouse)
    stmt = (
        select(StockTransfer, source.code, target.code)
        .join(source, source.id == StockTransfer.from_warehouse_id)
        .join(target, target.id == StockTransfer.to_warehouse_id)
        .order_by(StockTransfer.id.desc())
        .limit(limit)
    )
    if sku_id is not None:
        stmt = stmt.where(StockTransfer.sku_id == sku_id)
    if warehouse_id is not None:
        stmt = stmt.where(
            or_(StockTransfer.from_warehouse_id == warehouse_id, StockTransfer.to_warehouse_id == warehouse_id)
        )
    return [
        Transfer(t.id, t.sku_id, from_code, to_code, t.units, t.reason, t.actor, t.at, t.rule_id)
        for t, from_code, to_code in await session.execute(stmt)
    ]
