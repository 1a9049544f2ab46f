"""Tracing leaked codes back to their orders and batches, and quarantining a batch.

A trace is a form post (the file travels in it); its result shows on the page or, when the
form asks for it, downloads as CSV or XLSX: one row per code found, masked as on the page.
"""

from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import File, Form, Request, UploadFile
from fastapi.responses import Response

from kaquan.inventory import custody
from kaquan.kit.bounds import Id
from kaquan.kit.errors import BadInput
from kaquan.kit.tables import Table
from kaquan.orders.trace import LeakReport, trace_leaks
from kaquan.web.console.access import LeaksTrace, StockWrite
from kaquan.web.console.exports import DOWNLOADS, local, stem, word, wording
from kaquan.web.console.rendering import console_router, page
from kaquan.web.custody_api import MAX_LEAK_FILE_BYTES
from kaquan.web.deps import RuntimeDep
from kaquan.web.downloads import table_download
from kaquan.web.i18n import Translate, language, translator
from kaquan.web.pages import local_time

router = console_router()


@router.get("/admin/leaks")
async def leaks_form(request: Request, admin: LeaksTrace) -> Response:
    return page(request, admin, "leaks.html", {"report": None})


@router.post("/admin/leaks", responses=DOWNLOADS)
async def trace_leaked_codes(
    request: Request,
    rt: RuntimeDep,
    admin: LeaksTrace,
    file: Annotated[UploadFile, File()],
    layout: Annotated[Literal["auto", "single", "pair", "csv"], Form()] = "auto",
    output: Annotated[Literal["page", "csv", "xlsx"], Form()] = "page",
) -> Response:
    data = await file.read(MAX_LEAK_FILE_BYTES + 1)
    if len(data) > MAX_LEAK_FILE_BYTES:
        raise BadInput(f"the file is larger than {MAX_LEAK_FILE_BYTES // 2**20} MiB; split it")
    async with rt.db.read() as session:
        report = await trace_leaks(rt.db, session, rt.vault, data, layout=layout)
    if output != "page":
        table = leak_table(translator(language(request)), report, rt.settings.timezone)
        return table_download(table, output, stem("leaks", rt.settings.zone()))
    return page(request, admin, "leaks.html", {"report": report, "when": local_time(request), "word": wording(request)})


def leak_table(t: Translate, report: LeakReport, zone_name: str) -> Table:
    zone = ZoneInfo(zone_name)
    header = [t("import.line"), t("order.secret"), t("leaks.batch"), t("leaks.supplier"), "SKU", t("field.status")]
    header += [t("leaks.order"), t("orders.channel"), t("leaks.sold_at_in", zone=zone_name), t("leaks.reveals")]
    rows = [
        [
            leak.code.line_no,
            leak.code.code,
            leak.code.batch_id,
            leak.code.supplier,
            leak.code.sku,
            word(t, "code.status", leak.code.status),
            leak.order.number if leak.order else "",
            word(t, "channel", leak.order.channel) if leak.order else "",
            local(leak.code.sold_at, zone),
            "; ".join(f"{r.at.astimezone(zone):%Y-%m-%d %H:%M} {r.viewer}: {r.reason}" for r in leak.reveals),
        ]
        for leak in report.found
    ]
    return Table(t("export.leaks"), header, rows)


@router.post("/admin/batches/{batch_id}/quarantine")
async def quarantine_batch(
    request: Request,
    rt: RuntimeDep,
    admin: StockWrite,
    batch_id: Id,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    async with rt.db.transaction() as session:
        done = await custody.quarantine(rt.db, session, batch_id, actor=admin.actor, reason=reason, ip=admin.ip)
    return page(request, admin, "leaks.html", {"report": None, "quarantined": done, "when": local_time(request)})
