"""The admin API for warehouses, refill rules and stock transfers.

Warehouses are named by code (`main`, `backup`, …) and SKUs by code or id, as in
the rest of the admin API; reading needs STOCK_READ, changing needs STOCK_WRITE.
"""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from kaquan.catalog import service as catalog
from kaquan.identity.permissions import Permission
from kaquan.inventory import refills, warehouses
from kaquan.kit.bounds import INT32_MAX, Id
from kaquan.web.content import JSON_ONLY
from kaquan.web.deps import Principal, RuntimeDep, require

router = APIRouter(prefix="/admin/api", tags=["warehouses"], dependencies=JSON_ONLY)

StockRead = Annotated[Principal, require(Permission.STOCK_READ)]
StockWrite = Annotated[Principal, require(Permission.STOCK_WRITE)]
WarehouseCode = Annotated[str, Field(min_length=1, max_length=32)]
SkuRef = Annotated[Id | str, Field(description="SKU code or id")]


class WarehouseCreate(BaseModel):
    code: WarehouseCode
    name: Annotated[str, Field(min_length=1, max_length=200)]
    kind: Literal["own", "consignment"] = "own"
    consignee: Annotated[str | None, Field(max_length=200, description="who holds consignment stock")] = None


class WarehouseOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    kind: str
    consignee: str | None


class TransferCreate(BaseModel):
    sku: SkuRef
    from_warehouse: WarehouseCode
    to_warehouse: WarehouseCode
    units: Annotated[int, Field(ge=1, le=INT32_MAX)]
    reason: Annotated[str, Field(min_length=1, max_length=200)]


class TransferOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sku_id: int
    from_warehouse: str
    to_warehouse: str
    units: int
    reason: str
    actor: str
    at: datetime
    rule_id: int | None


class RuleCreate(BaseModel):
    sku: SkuRef
    warehouse: WarehouseCode = Field(description="the warehouse kept stocked")
    source_warehouse: WarehouseCode = Field(description="where its refills come from")
    threshold: Annotated[int, Field(ge=1, le=INT32_MAX, description="refill when fewer units than this are available")]
    refill_units: Annotated[int, Field(ge=1, le=INT32_MAX, description="units moved per refill, at most")]


class RuleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sku_id: int
    warehouse: str
    source_warehouse: str
    threshold: int
    refill_units: int
    active: bool
    low_since: datetime | None


@router.get("/warehouses")
async def list_warehouses(rt: RuntimeDep, admin: StockRead) -> list[WarehouseOut]:
    async with rt.db.read() as session:
        return [WarehouseOut.model_validate(w) for w in await warehouses.list_warehouses(session)]


@router.post("/warehouses", status_code=201)
async def create_warehouse(rt: RuntimeDep, admin: StockWrite, body: WarehouseCreate) -> WarehouseOut:
    async with rt.db.transaction() as session:
        created = await warehouses.create_warehouse(
            rt.db,
            session,
            body.code,
            body.name,
            kind=body.kind,
            consignee=body.consignee,
            actor=admin.actor,
            ip=admin.ip,
        )
        return WarehouseOut.model_validate(created)


@router.post("/transfers", status_code=201)
async def transfer_stock(rt: RuntimeDep, admin: StockWrite, body: TransferCreate) -> TransferOut:
    """Move available units between warehouses: all of them or none (409 `out_of_stock`)."""
    async with rt.db.transaction() as session:
        sku = await catalog.get_sku(session, body.sku)
        source = await warehouses.get_warehouse(session, body.from_warehouse)
        target = await warehouses.get_warehouse(session, body.to_warehouse)
        transfer = await warehouses.transfer_stock(
            rt.db, session, sku.id, source.id, target.id, body.units, actor=admin.actor, reason=body.reason, ip=admin.ip
        )
    return TransferOut.model_validate(transfer)


@router.get("/transfers")
async def list_transfers(
    rt: RuntimeDep,
    admin: StockRead,
    sku: str | None = None,
    warehouse: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[TransferOut]:
    """Transfers newest first; `warehouse` keeps those into or out of it."""
    async with rt.db.read() as session:
        sku_id = (await catalog.get_sku(session, sku)).id if sku else None
        warehouse_id = (await warehouses.get_warehouse(session, warehouse)).id if warehouse else None
        rows = await warehouses.list_transfers(session, sku_id=sku_id, warehouse_id=warehouse_id, limit=limit)
    return [TransferOut.model_validate(row) for row in rows]


@router.get("/refill-rules")
async def list_rules(rt: RuntimeDep, admin: StockRead, sku: str | None = None) -> list[RuleOut]:
    async with rt.db.read() as session:
        sku_id = (await catalog.get_sku(session, sku)).id if sku else None
        return [RuleOut.model_validate(rule) for rule in await refills.list_rules(session, sku_id=sku_id)]


@router.post("/refill-rules", status_code=201)
async def add_rule(rt: RuntimeDep, admin: StockWrite, body: RuleCreate) -> RuleOut:
    """Add a refill rule; the same SKU, warehouse and source again updates and re-enables it."""
    async with rt.db.transaction() as session:
        sku = await catalog.get_sku(session, body.sku)
        target = await warehouses.get_warehouse(session, body.warehouse)
        source = await warehouses.get_warehouse(session, body.source_warehouse)
        rule = await refills.add_rule(
            rt.db,
            session,
            sku.id,
            target.id,
            source.id,
            threshold=body.threshold,
            refill_units=body.refill_units,
            actor=admin.actor,
            ip=admin.ip,
        )
    return RuleOut.model_validate(rule)


@router.post("/refill-rules/{rule_id}/disable")
async def disable_rule(rt: RuntimeDep, admin: StockWrite, rule_id: Id) -> RuleOut:
    async with rt.db.transaction() as session:
        rule = await refills.disable_rule(rt.db, session, rule_id, actor=admin.actor, ip=admin.ip)
    return RuleOut.model_validate(rule)
