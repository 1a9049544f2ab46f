"""The admin JSON API: catalog, stock imports and stock levels, each route behind the one permission it declares."""

from dataclasses import asdict
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, UploadFile

from kaquan.catalog import service as catalog
from kaquan.catalog.schemas import ProductCreate, ProductOut, SkuCreate, SkuOut
from kaquan.identity.permissions import Permission
from kaquan.inventory import CodeSource, importing, segments, stock
from kaquan.kit.bounds import Int32
from kaquan.kit.errors import BadInput
from kaquan.orders import service as orders
from kaquan.web.content import JSON_ONLY
from kaquan.web.deps import Principal, RuntimeDep, require
from kaquan.web.schemas import ImportOut, OrderOut, SegmentCreate, SegmentOut, StockOut

router = APIRouter(prefix="/admin/api", tags=["admin"], dependencies=JSON_ONLY)
MAX_UPLOAD_BYTES = 512 * 1024 * 1024

CatalogRead = Annotated[Principal, require(Permission.CATALOG_READ)]
CatalogWrite = Annotated[Principal, require(Permission.CATALOG_WRITE)]
OrdersRead = Annotated[Principal, require(Permission.ORDERS_READ)]
StockRead = Annotated[Principal, require(Permission.STOCK_READ)]
StockWrite = Annotated[Principal, require(Permission.STOCK_WRITE)]


def code_source(file: UploadFile) -> CodeSource:
    """An uploaded code file, read from its spooled temporary file a chunk at a time, never whole into memory."""
    size = file.size
    if size is None:
        size = file.file.seek(0, 2)
    if size > MAX_UPLOAD_BYTES:
        raise BadInput(f"the file is larger than {MAX_UPLOAD_BYTES // 2**20} MiB; split it", max_bytes=MAX_UPLOAD_BYTES)
    return CodeSource.of_file(file.file, size)


@router.get("/products")
async def list_products(rt: RuntimeDep, admin: CatalogRead) -> list[ProductOut]:
    async with rt.db.read() as session:
        return [ProductOut.model_validate(p) for p in await catalog.list_products(session)]


@router.post("/products", status_code=201)
async def create_product(rt: RuntimeDep, admin: CatalogWrite, body: ProductCreate) -> ProductOut:
    async with rt.db.transaction() as session:
        return ProductOut.model_validate(await catalog.create_product(session, body, actor=admin.actor))


@router.get("/skus")
async def list_skus(rt: RuntimeDep, admin: CatalogRead) -> list[SkuOut]:
    async with rt.db.read() as session:
        return [SkuOut.model_validate(s) for s in await catalog.list_skus(session)]


@router.post("/skus", status_code=201)
async def create_sku(rt: RuntimeDep, admin: CatalogWrite, body: SkuCreate) -> SkuOut:
    async with rt.db.transaction() as session:
        return SkuOut.model_validate(await catalog.create_sku(session, body, actor=admin.actor))


@router.post("/skus/{sku}/batches", status_code=201)
async def import_batch(
    rt: RuntimeDep,
    admin: StockWrite,
    sku: str,
    file: Annotated[UploadFile, File(description="one code per line, card_no,secret lines, or CSV with a header")],
    supplier: Annotated[str, Form(max_length=200)] = "",
    unit_cost_minor: Annotated[Int32, Form(ge=0)] = 0,
    expires_on: Annotated[date | None, Form()] = None,
    warehouse: Annotated[str, Form(max_length=32)] = "main",
    layout: Annotated[Literal["auto", "single", "pair", "csv"], Form()] = "auto",
    encoding: Annotated[str | None, Form(max_length=32)] = None,
    skip_invalid: Annotated[bool, Form()] = False,
) -> ImportOut:
    source = code_source(file)
    meta = importing.BatchMeta(
        supplier=supplier,
        unit_cost_minor=unit_cost_minor,
        expires_on=expires_on,
        warehouse=warehouse,
        source=file.filename or "",
    )
    async with rt.db.transaction() as session:
        target = await catalog.get_sku(session, sku)
        result = await importing.import_file(
            rt.db,
            session,
            rt.vault,
            target,
            source,
            meta,
            actor=admin.actor,
            layout=layout,
            encoding=encoding or None,
            skip_invalid=skip_invalid,
        )
    return ImportOut(**asdict(result))


@router.post("/skus/{sku}/segments", status_code=201)
async def add_segment(rt: RuntimeDep, admin: StockWrite, sku: str, body: SegmentCreate) -> SegmentOut:
    meta = importing.BatchMeta(
        supplier=body.supplier,
        unit_cost_minor=body.unit_cost_minor,
        expires_on=body.expires_on,
        warehouse=body.warehouse,
    )
    async with rt.db.transaction() as session:
        target = await catalog.get_sku(session, sku)
        batch = await segments.add_segment(
            rt.db,
            session,
            target,
            prefix=body.prefix,
            width=body.width,
            start=body.start,
            end=body.end,
            meta=meta,
            actor=admin.actor,
        )
    return SegmentOut(batch_id=batch.id, quantity=batch.quantity)


@router.get("/stock")
async def stock_levels(rt: RuntimeDep, admin: StockRead, sku: str | None = None) -> list[StockOut]:
    async with rt.db.read() as session:
        sku_id = (await catalog.get_sku(session, sku)).id if sku else None
        rows = await stock(session, sku_id=sku_id)
    return [StockOut(**asdict(row), adds_up=row.adds_up) for row in rows]


@router.get("/orders/{number}")
async def order_detail(rt: RuntimeDep, admin: OrdersRead, number: str) -> OrderOut:
    """Order facts for support; codes are not revealed here (reveal needs a reason and an audit entry)."""
    async with rt.db.read() as session:
        return OrderOut.of(await orders.by_number(session, number))
