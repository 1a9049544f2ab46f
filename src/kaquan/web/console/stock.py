"""A SKU's batches and stock levels, and importing a batch of codes from a file."""

from dataclasses import asdict
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import File, Form, Request, UploadFile
from fastapi.responses import Response

from kaquan.catalog import service as catalog
from kaquan.inventory import ImportRejected, batches_of_sku, importing, stock
from kaquan.kit.bounds import Int32
from kaquan.kit.errors import BadInput
from kaquan.web.admin_api import code_source
from kaquan.web.console.access import StockRead, StockWrite
from kaquan.web.console.rendering import console_router, page
from kaquan.web.deps import Principal, RuntimeDep

router = console_router()


async def _batches_page(
    request: Request, rt: RuntimeDep, admin: Principal, sku_ref: str, *, outcome: dict[str, Any], status: int = 200
) -> Response:
    async with rt.db.read() as session:
        sku = await catalog.get_sku(session, sku_ref)
        levels = await stock(session, sku_id=sku.id)
        batches = await batches_of_sku(session, sku.id)
    context = {"sku": sku, "levels": levels, "batches": batches, **outcome}
    return page(request, admin, "batches.html", context, status=status)


@router.get("/admin/skus/{sku}/batches")
async def batches(request: Request, rt: RuntimeDep, admin: StockRead, sku: str) -> Response:
    return await _batches_page(request, rt, admin, sku, outcome={})


@router.post("/admin/skus/{sku}/batches")
async def import_batch(
    request: Request,
    rt: RuntimeDep,
    admin: StockWrite,
    sku: str,
    file: Annotated[UploadFile, File()],
    supplier: Annotated[str, Form(max_length=200)] = "",
    unit_cost_minor: Annotated[Int32, Form(ge=0)] = 0,
    expires_on: Annotated[str, Form(max_length=10)] = "",
    warehouse: Annotated[str, Form(max_length=32)] = "main",
    layout: Annotated[Literal["auto", "single", "pair", "csv"], Form()] = "auto",
    skip_invalid: Annotated[bool, Form()] = False,
) -> Response:
    source = code_source(file)
    try:
        expiry = date.fromisoformat(expires_on) if expires_on else None
    except ValueError:
        raise BadInput("the expiry date is YYYY-MM-DD", field="expires_on") from None
    meta = importing.BatchMeta(
        supplier=supplier,
        unit_cost_minor=unit_cost_minor,
        expires_on=expiry,
        warehouse=warehouse or "main",
        source=file.filename or "",
    )
    try:
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
                skip_invalid=skip_invalid,
            )
    except ImportRejected as rejected:
        outcome = {
            "rejected": rejected.details.get("problems", []),
            "rejected_total": rejected.details.get("problem_count"),
        }
        return await _batches_page(request, rt, admin, sku, outcome=outcome, status=400)
    return await _batches_page(request, rt, admin, sku, outcome={"imported": asdict(result)})
