"""Settlement statements: every run with its figures, and its CSV, XLSX and PDF for download."""

from typing import Annotated

from fastapi import Path, Request
from fastapi.responses import Response

from kaquan import settlement
from kaquan.kit.bounds import Int64
from kaquan.web.console.access import FinanceRead
from kaquan.web.console.rendering import console_router, page
from kaquan.web.deps import RuntimeDep

router = console_router()


@router.get("/admin/settlement")
async def settlement_page(request: Request, rt: RuntimeDep, admin: FinanceRead) -> Response:
    """The latest statements, newest first, with download links."""
    async with rt.db.read(stale_ok=True) as session:
        runs = await settlement.list_runs(session, limit=200)
    rows = [
        {
            "run": run,
            **{
                name: settlement.money(int(run.figures[name]), run.currency)
                for name in ("sales", "commissions", "payouts", "closing")
            },
        }
        for run in runs
    ]
    return page(request, admin, "settlement.html", {"rows": rows, "formats": list(settlement.FORMATS)})


@router.get("/admin/settlement/{run_id}.{fmt}")
async def statement_download(
    rt: RuntimeDep,
    admin: FinanceRead,
    run_id: Int64,
    fmt: Annotated[str, Path(pattern="^(csv|xlsx|pdf)$")],
) -> Response:
    """One statement as a file."""
    async with rt.db.read(stale_ok=True) as session:
        found = await settlement.statement_file(session, await settlement.get_run(session, run_id), fmt)
    return Response(
        found.content,
        media_type=found.media_type,
        headers={"Content-Disposition": f'attachment; filename="{found.filename}"'},
    )
