"""Importing a code file with the server-side import's progress streamed back as it goes.

The browser uploads the file (its bar shows the upload), then reads this response line by line:
one JSON object per line (NDJSON), `{"phase": "received"}` once the file is in, then
`{"phase": "checking" | "storing", "codes": n, "percent": p}` after each chunk the import
passes through (a chunk is `importing.COPY_CHUNK` codes; `percent` is how much of the file
this phase has read), and last `{"phase": "done", "status": 200 | 400 | 4xx, "html": page}`:
the batches page with the result, as the plain form post would have answered.

No job table and no background worker: the import runs inside this request, in its own
transaction, so a server restart or a closed tab leaves nothing half-imported (the transaction
rolls back) and any process behind the load balancer can serve it. A refusal found before the
import starts (no such SKU, a bad date, a file too large) is answered as the usual error page.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import File, Form, Request, UploadFile
from fastapi.responses import Response, StreamingResponse

from kaquan.catalog import service as catalog
from kaquan.inventory import ImportRejected, importing
from kaquan.kit.errors import DomainError
from kaquan.web.admin_api import code_source
from kaquan.web.console.access import StockWrite
from kaquan.web.console.rendering import console_router, error_page
from kaquan.web.console.stock import Layout, batch_meta, batches_page, rejected_outcome
from kaquan.web.deps import RuntimeDep

router = console_router()
MEDIA_TYPE = "application/x-ndjson"


def _line(event: dict[str, Any]) -> bytes:
    return (json.dumps(event, ensure_ascii=False) + "\n").encode()


def _progress(advance: importing.Advance, size: int) -> dict[str, Any]:
    percent = min(100, advance.bytes_read * 100 // size) if size else 100
    return {"phase": advance.phase, "codes": advance.codes, "percent": percent}


@router.post(
    "/admin/skus/{sku}/imports",
    response_class=Response,
    responses={
        200: {
            "description": "the import's progress, then its answer page",
            "content": {MEDIA_TYPE: {"schema": {"type": "string"}}},
        },
    },
)
async def import_with_progress(
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
    async with rt.db.read() as session:
        target = await catalog.get_sku(session, sku)
    meta = batch_meta(file, target, supplier=supplier, unit_cost=unit_cost, expires_on=expires_on, warehouse=warehouse)
    size = source.size or 0

    async def run(report: importing.Progress) -> Response:
        try:
            async with rt.db.transaction() as session:
                fresh = await catalog.get_sku(session, target.id)
                result = await importing.import_file(
                    rt.db,
                    session,
                    rt.vault,
                    fresh,
                    source,
                    meta,
                    actor=admin.actor,
                    layout=layout,
                    skip_invalid=skip_invalid,
                    progress=report,
                )
        except ImportRejected as rejected:
            return await batches_page(request, rt, admin, sku, outcome=rejected_outcome(rejected), status=400)
        except DomainError as refused:
            return await error_page(request, refused.status, refused.code, refused.message, refused.details)
        return await batches_page(request, rt, admin, sku, outcome={"imported": asdict(result)})

    return StreamingResponse(
        _events(run, size),
        media_type=MEDIA_TYPE,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _events(
    run: Callable[[importing.Progress], Coroutine[Any, Any, Response]], size: int
) -> AsyncIterator[bytes]:
    """The import's progress as it happens, then its answer page; a client gone away cancels (rolls back) it."""
    queue: asyncio.Queue[importing.Advance | None] = asyncio.Queue()
    task: asyncio.Task[Response] = asyncio.create_task(run(queue.put_nowait))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    try:
        yield _line({"phase": "received", "bytes": size})
        while (advance := await queue.get()) is not None:
            yield _line(_progress(advance, size))
        answer = task.result()
        yield _line({"phase": "done", "status": answer.status_code, "html": bytes(answer.body).decode()})
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
