"""Tracing leaked codes back to their orders and batches, and quarantining a batch."""

from typing import Annotated, Literal

from fastapi import File, Form, Request, UploadFile
from fastapi.responses import Response

from kaquan.inventory import custody
from kaquan.kit.bounds import Id
from kaquan.kit.errors import BadInput
from kaquan.orders.trace import trace_leaks
from kaquan.web.console.access import LeaksTrace, StockWrite
from kaquan.web.console.rendering import console_router, page
from kaquan.web.custody_api import MAX_LEAK_FILE_BYTES
from kaquan.web.deps import RuntimeDep

router = console_router()


@router.get("/admin/leaks")
async def leaks_form(request: Request, admin: LeaksTrace) -> Response:
    return page(request, admin, "leaks.html", {"report": None})


@router.post("/admin/leaks")
async def trace_leaked_codes(
    request: Request,
    rt: RuntimeDep,
    admin: LeaksTrace,
    file: Annotated[UploadFile, File()],
    layout: Annotated[Literal["auto", "single", "pair", "csv"], Form()] = "auto",
) -> Response:
    data = await file.read(MAX_LEAK_FILE_BYTES + 1)
    if len(data) > MAX_LEAK_FILE_BYTES:
        raise BadInput(f"the file is larger than {MAX_LEAK_FILE_BYTES // 2**20} MiB; split it")
    async with rt.db.read() as session:
        report = await trace_leaks(rt.db, session, rt.vault, data, layout=layout)
    return page(request, admin, "leaks.html", {"report": report})


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
    return page(request, admin, "leaks.html", {"report": None, "quarantined": done})
