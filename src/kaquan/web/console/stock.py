"""A SKU's batches and stock levels, importing a batch of codes from a file, and both lists as downloads.

The page's form posts here when the browser runs no script; with script it posts to
`stock_import`, which answers with the server-side import's progress as it goes.
"""

from dataclasses import asdict
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import File, Form, Request, UploadFile
from fastapi.responses import Response

from kaquan.catalog import service as catalog
from kaquan.catalog.service import Sku
from kaquan.inventory import ImportRejected, batches_of_sku, importing, stock
from kaquan.kit.errors import BadInput
from kaquan.kit.tables import Cell, Format, Table
from kaquan.web.admin_api import code_source
from kaquan.web.console.access import StockRead, StockWrite
from kaquan.web.console.catalog import amount
from kaquan.web.console.rendering import console_router, page
from kaquan.web.deps import Principal, RuntimeDep
from kaquan.web.downloads import DOWNLOAD_RESPONSES, table_download
from kaquan.web.i18n import language, translator
from kaquan.web.pages import local_time

router = console_router()

Layout = Literal["auto", "single", "pair", "csv"]
EXPORT_LIMIT = 100_000


async def batches_page(
    request: Request, rt: RuntimeDep, admin: Principal, sku_ref: str, *, outcome: dict[str, Any], status: int = 200
) -> Response:
    async with rt.db.read() as session:
        sku = await catalog.get_sku(session, sku_ref)
        levels = await stock(session, sku_id=sku.id)
        batches = await batches_of_sku(session, sku.id)
    context = {"sku": sku, "levels": levels, "batches": batches, "when": local_time(request), **outcome}
    return page(request, admin, "batches.html", context, status=status)


def batch_meta(
    file: UploadFile, sku: Sku, *, supplier: str, unit_cost: str, expires_on: str, warehouse: str
) -> importing.BatchMeta:
    """The batch's description from the import form (the unit cost typed in the SKU's currency, `8.00`);
    a bad cost or date is refused before anything is read."""
    unit_cost_minor = amount(unit_cost or "0", sku.currency, "unit_cost")
    try:
        expiry = date.fromisoformat(expires_on) if expires_on else None
    except ValueError:
        raise BadInput("the expiry date is YYYY-MM-DD", field="expires_on") from None
    return importing.BatchMeta(
        supplier=supplier,
        unit_cost_minor=unit_cost_minor,
        expires_on=expiry,
        warehouse=warehouse or "main",
        source=file.filename or "",
    )


def rejected_outcome(rejected: ImportRejected) -> dict[str, Any]:
    return {"rejected": rejected.details.get("problems", []), "rejected_total": rejected.details.get("problem_count")}


@router.get("/admin/skus/{sku}/batches")
async def batches(request: Request, rt: RuntimeDep, admin: StockRead, sku: str) -> Response:
    return await batches_page(request, rt, admin, sku, outcome={})


@router.get("/admin/skus/{sku}/batches/export", response_class=Response, responses=DOWNLOAD_RESPONSES)
async def export_batches(
    request: Request, rt: RuntimeDep, admin: StockRead, sku: str, format: Format = "csv"
) -> Response:
    """The SKU's batches, newest first, times in the merchant's zone."""
    t = translator(language(request))
    zone = rt.settings.zone()
    async with rt.db.read(stale_ok=True) as session:
        target = await catalog.get_sku(session, sku)
        found = await batches_of_sku(session, target.id, limit=EXPORT_LIMIT)
    header = [
        t("batches.number"),
        t("stock.warehouse"),
        t("batches.supplier"),
        t("batches.quantity"),
        t("batches.source"),
        t("batches.by"),
        t("field.created"),
        t("batches.quarantined"),
    ]
    rows = [
        [
            b.id,
            warehouse,
            b.supplier,
            b.quantity,
            b.source,
            b.created_by,
            b.created_at.astimezone(zone),
            b.quarantined_at.astimezone(zone) if b.quarantined_at else None,
        ]
        for b, warehouse in found
    ]
    title = t("batches.title", sku=target.code)
    return table_download(Table(title, header, rows), format, f"batches-{target.code}")


@router.get("/admin/skus/{sku}/stock/export", response_class=Response, responses=DOWNLOAD_RESPONSES)
async def export_stock(
    request: Request, rt: RuntimeDep, admin: StockRead, sku: str, format: Format = "csv"
) -> Response:
    t = translator(language(request))
    async with rt.db.read(stale_ok=True) as session:
        target = await catalog.get_sku(session, sku)
        levels = await stock(session, sku_id=target.id)
    header = [
        t("stock.warehouse"),
        t("stock.available"),
        t("stock.reserved"),
        t("stock.sold"),
        t("stock.voided"),
        t("stock.imported"),
    ]
    rows: list[list[Cell]] = [[r.warehouse, r.available, r.reserved, r.sold, r.voided, r.imported] for r in levels]
    title = t("batches.stock_of", sku=target.code)
    return table_download(Table(title, header, rows), format, f"stock-{target.code}")


@router.post("/admin/skus/{sku}/batches")
async def import_batch(
    request: Request,
    rt: RuntimeDep,
    admin: StockWrite,
    sku: str,
    file: Annotated[UploadFile, File()],
    supplier: Annotated[str, Form(max_length=200)] = "",
    unit_cost: Annotated[str, Form(max_length=32)] = "",
    expires_on: Annotated[str, Form(max_length=10)] = "",
    warehouse: Annotated[str, Form(max_length=32)] = "main",
    layout: Annotated[Layout, Form()] = "auto",
    skip_invalid: Annotated[bool, Form()] = False,
) -> Response:
    source = code_source(file)
    try:
        async with rt.db.transaction() as session:
            target = await catalog.get_sku(session, sku)
            meta = batch_meta(
                file, target, supplier=supplier, unit_cost=unit_cost, expires_on=expires_on, warehouse=warehouse
            )
            result = await importing.import_file(
                rt.db,
                session,
                rt.vault,
                target,
                source,
                meta,
                actor=admin.actor,
                layout=layout,
                skip_invalid=skip_invalid,
            )
    except ImportRejected as rejected:
        return await batches_page(request, rt, admin, sku, outcome=rejected_outcome(rejected), status=400)
    return await batches_page(request, rt, admin, sku, outcome={"imported": asdict(result)})
