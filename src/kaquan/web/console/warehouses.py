"""Warehouses in the console: stock per warehouse, adding a warehouse, moving stock, refill rules.

The handlers call what the admin API calls (`inventory.warehouses`, `inventory.refills`), which check,
lock and audit; a refused form is an error page and nothing changes. Every list downloads as CSV or XLSX
(`?format=csv&list=stock`).
"""

from typing import Annotated, Any, Literal

from fastapi import Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.catalog import service as catalog
from kaquan.inventory import refills, stock, warehouses
from kaquan.kit.bounds import Id
from kaquan.kit.tables import Cell, Format, Table
from kaquan.web.console.access import StockRead, StockWrite
from kaquan.web.console.local_input import whole_number
from kaquan.web.console.rendering import console_router, page
from kaquan.web.deps import RuntimeDep
from kaquan.web.downloads import PAGE_OR_DOWNLOAD, table_download
from kaquan.web.i18n import Translate, language, translator
from kaquan.web.pages import local_time

router = console_router()
PAGE = "/admin/warehouses"
ListName = Literal["warehouses", "stock", "transfers", "rules"]
Done = Literal["warehouse", "transfer", "rule", "disabled"]
TRANSFERS_SHOWN = 100


async def _sku_codes(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    return {sku_id: (await catalog.get_sku(session, sku_id)).code for sku_id in sorted(ids)}


async def _lists(session: AsyncSession) -> dict[str, Any]:
    levels = await stock(session)
    moved = await warehouses.list_transfers(session, limit=TRANSFERS_SHOWN)
    rules = await refills.list_rules(session)
    ids = {row.sku_id for row in levels} | {t.sku_id for t in moved} | {r.sku_id for r in rules}
    return {
        "warehouses": await warehouses.list_warehouses(session),
        "levels": levels,
        "transfers": moved,
        "rules": rules,
        "sku_codes": await _sku_codes(session, ids),
    }


def _table(name: ListName, lists: dict[str, Any], t: Translate, when: Any) -> Table:
    codes: dict[int, str] = lists["sku_codes"]
    rows: list[list[Cell]]
    if name == "warehouses":
        header = ["wh.code", "wh.name", "wh.kind", "wh.consignee"]
        rows = [[w.code, w.name, t(f"wh.kind.{w.kind}"), w.consignee] for w in lists["warehouses"]]
    elif name == "stock":
        header = ["wh.sku", "stock.warehouse", "stock.available", "stock.reserved", "stock.sold", "stock.voided"]
        header.append("stock.imported")
        rows = [
            [codes[s.sku_id], s.warehouse, s.available, s.reserved, s.sold, s.voided, s.imported]
            for s in lists["levels"]
        ]
    elif name == "transfers":
        header = ["wh.at", "wh.sku", "wh.from", "wh.to", "wh.units", "wh.reason", "wh.by"]
        rows = [
            [when(x.at), codes[x.sku_id], x.from_warehouse, x.to_warehouse, x.units, x.reason, _by(x.actor, t)]
            for x in lists["transfers"]
        ]
    else:
        header = ["wh.rule", "wh.sku", "wh.kept", "wh.source", "wh.threshold", "wh.refill_units", "wh.state"]
        header.append("wh.low_since")
        rows = [
            [
                r.id,
                codes[r.sku_id],
                r.warehouse,
                r.source_warehouse,
                r.threshold,
                r.refill_units,
                t("wh.rule.active") if r.active else t("wh.rule.disabled"),
                when(r.low_since) if r.low_since else None,
            ]
            for r in lists["rules"]
        ]
    return Table(t(f"wh.list.{name}"), [t(key) for key in header], rows)


def _by(actor: str, t: Translate) -> str:
    return t("wh.by_rules") if actor == refills.SCHEDULER else actor


@router.get("/admin/warehouses", responses=PAGE_OR_DOWNLOAD)
async def warehouses_page(
    request: Request,
    rt: RuntimeDep,
    admin: StockRead,
    fmt: Annotated[Format | None, Query(alias="format")] = None,
    list_name: Annotated[ListName, Query(alias="list")] = "stock",
    done: Annotated[Done | None, Query()] = None,
) -> Response:
    """Warehouses, stock per SKU and warehouse, recent transfers and refill rules, with the forms that change them."""
    async with rt.db.read() as session:
        lists = await _lists(session)
    t = translator(language(request))
    when = local_time(request)
    if fmt is not None:
        return table_download(_table(list_name, lists, t, when), fmt, f"warehouse-{list_name}")
    return page(request, admin, "warehouses.html", {**lists, "when": when, "by": _by, "done": done})


def _back(done: Done) -> RedirectResponse:
    return RedirectResponse(f"{PAGE}?done={done}", status_code=303)


@router.post("/admin/warehouses")
async def create_warehouse(
    rt: RuntimeDep,
    admin: StockWrite,
    code: Annotated[str, Form(max_length=40)],
    name: Annotated[str, Form(max_length=200)],
    kind: Annotated[str, Form(max_length=20)] = "own",
    consignee: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    async with rt.db.transaction() as session:
        await warehouses.create_warehouse(
            rt.db,
            session,
            code,
            name,
            kind=kind,
            consignee=consignee.strip() or None,
            actor=admin.actor,
            ip=admin.ip,
        )
    return _back("warehouse")


@router.post("/admin/warehouses/transfers")
async def transfer(
    rt: RuntimeDep,
    admin: StockWrite,
    sku: Annotated[str, Form(max_length=64)],
    from_warehouse: Annotated[str, Form(max_length=40)],
    to_warehouse: Annotated[str, Form(max_length=40)],
    units: Annotated[str, Form(max_length=12)],
    reason: Annotated[str, Form(max_length=400)] = "",
) -> Response:
    """Move available units between warehouses: all of them, or none (an error page)."""
    count = whole_number(units, field="units")
    async with rt.db.transaction() as session:
        target_sku = await catalog.get_sku(session, sku.strip())
        source = await warehouses.get_warehouse(session, from_warehouse.strip())
        target = await warehouses.get_warehouse(session, to_warehouse.strip())
        await warehouses.transfer_stock(
            rt.db, session, target_sku.id, source.id, target.id, count, actor=admin.actor, reason=reason, ip=admin.ip
        )
    return _back("transfer")


@router.post("/admin/warehouses/refill-rules")
async def add_rule(
    rt: RuntimeDep,
    admin: StockWrite,
    sku: Annotated[str, Form(max_length=64)],
    warehouse: Annotated[str, Form(max_length=40)],
    source_warehouse: Annotated[str, Form(max_length=40)],
    threshold: Annotated[str, Form(max_length=12)],
    refill_units: Annotated[str, Form(max_length=12)],
) -> Response:
    """Add a refill rule; the same SKU, warehouse and source again updates and re-enables it."""
    below = whole_number(threshold, field="threshold")
    moved = whole_number(refill_units, field="refill_units")
    async with rt.db.transaction() as session:
        target_sku = await catalog.get_sku(session, sku.strip())
        target = await warehouses.get_warehouse(session, warehouse.strip())
        source = await warehouses.get_warehouse(session, source_warehouse.strip())
        await refills.add_rule(
            rt.db,
            session,
            target_sku.id,
            target.id,
            source.id,
            threshold=below,
            refill_units=moved,
            actor=admin.actor,
            ip=admin.ip,
        )
    return _back("rule")


@router.post("/admin/warehouses/refill-rules/{rule_id}/disable")
async def disable_rule(rt: RuntimeDep, admin: StockWrite, rule_id: Id) -> Response:
    async with rt.db.transaction() as session:
        await refills.disable_rule(rt.db, session, rule_id, actor=admin.actor, ip=admin.ip)
    return _back("disabled")
