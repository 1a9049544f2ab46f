"""The audit trail, filtered and paged newest first."""

from typing import Annotated
from urllib.parse import urlencode

from fastapi import Query, Request
from fastapi.responses import Response

from kaquan.audit import service as audit
from kaquan.kit.bounds import BigRowId
from kaquan.web.console.access import AuditRead
from kaquan.web.console.rendering import console_router, page
from kaquan.web.deps import RuntimeDep

AUDIT_PAGE = 100

router = console_router()


@router.get("/admin/audit")
async def audit_trail(
    request: Request,
    rt: RuntimeDep,
    admin: AuditRead,
    actor: Annotated[str, Query(max_length=128)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
    target: Annotated[str, Query(max_length=128)] = "",
    before_id: BigRowId | None = None,
) -> Response:
    filters = {"actor": actor.strip(), "action": action.strip(), "target": target.strip()}
    where = audit.AuditFilter(
        actor=filters["actor"] or None, action=filters["action"] or None, target=filters["target"] or None
    )
    async with rt.db.read() as session:
        rows = await audit.search(session, where, before_id=before_id, limit=AUDIT_PAGE)
    chosen = {name: value for name, value in filters.items() if value}
    next_page = urlencode({**chosen, "before_id": rows[-1].id}) if len(rows) == AUDIT_PAGE else None
    context = {"entries": rows, "filters": filters, "csv_query": urlencode(chosen), "next_page": next_page}
    return page(request, admin, "audit.html", context)
