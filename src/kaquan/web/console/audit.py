"""The audit trail, filtered and paged newest first, and downloadable as CSV or XLSX as filtered.

The download here is what a person reads (times in the shop's zone, changes as JSON); the
hash-chained export for verifying the chain stays `GET /admin/api/audit.csv`.
"""

import json
from functools import partial
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import Depends, Query, Request
from fastapi.responses import Response

from kaquan.audit import service as audit
from kaquan.kit.bounds import BigRowId
from kaquan.kit.tables import Table
from kaquan.web.console.access import AuditRead
from kaquan.web.console.exports import DOWNLOADS, local, stem
from kaquan.web.console.rendering import console_router, page
from kaquan.web.deps import RuntimeDep
from kaquan.web.downloads import table_download
from kaquan.web.i18n import language, translator
from kaquan.web.i18n_identifiers import AUDIT_ACTIONS, action_words
from kaquan.web.pages import local_time

AUDIT_PAGE = 100
EXPORT_LIMIT = 10_000

router = console_router()


def audit_filters(
    actor: Annotated[str, Query(max_length=128)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
    target: Annotated[str, Query(max_length=128)] = "",
) -> dict[str, str]:
    return {"actor": actor.strip(), "action": action.strip(), "target": target.strip()}


Filters = Annotated[dict[str, str], Depends(audit_filters)]


def _where(filters: dict[str, str]) -> audit.AuditFilter:
    return audit.AuditFilter(
        actor=filters["actor"] or None, action=filters["action"] or None, target=filters["target"] or None
    )


@router.get("/admin/audit")
async def audit_trail(
    request: Request, rt: RuntimeDep, admin: AuditRead, filters: Filters, before_id: BigRowId | None = None
) -> Response:
    async with rt.db.read(stale_ok=True) as session:
        rows = await audit.search(session, _where(filters), before_id=before_id, limit=AUDIT_PAGE)
    chosen = {name: value for name, value in filters.items() if value}
    next_page = urlencode({**chosen, "before_id": rows[-1].id}) if len(rows) == AUDIT_PAGE else None
    context = {
        "entries": rows,
        "filters": filters,
        "csv_query": urlencode(chosen),
        "next_page": next_page,
        "export_limit": EXPORT_LIMIT,
        "when": local_time(request),
        "action_words": partial(action_words, language(request)),
        "actions": _action_choices(language(request), filters["action"]),
    }
    return page(request, admin, "audit.html", context)


@router.get("/admin/audit.{fmt}", responses=DOWNLOADS)
async def audit_export(
    request: Request, rt: RuntimeDep, admin: AuditRead, fmt: Literal["csv", "xlsx"], filters: Filters
) -> Response:
    """The newest `EXPORT_LIMIT` entries matching the filters, newest first."""
    t, zone = translator(language(request)), rt.settings.zone()
    async with rt.db.read(stale_ok=True) as session:
        rows = await audit.search(session, _where(filters), limit=EXPORT_LIMIT)
    lang = language(request)
    header = ["#", t("audit.at_in", zone=rt.settings.timezone), t("audit.actor"), t("audit.action")]
    header += [t("audit.action_code"), t("audit.target"), t("audit.before"), t("audit.after"), t("audit.ip")]
    table = Table(
        t("export.audit"),
        header,
        [[e.id, local(e.at, zone), e.actor, action_words(lang, e.action) or e.action, *_rest(e)] for e in rows],
    )
    return table_download(table, fmt, stem("audit", zone))


def _action_choices(lang: str, chosen: str) -> list[tuple[str, str]]:
    """(action, words) for the filter, in the order of their words; a chosen action not in the catalogue too."""
    known = sorted(((a, action_words(lang, a) or a) for a in AUDIT_ACTIONS), key=lambda pair: pair[1])
    return known if not chosen or chosen in AUDIT_ACTIONS else [(chosen, chosen), *known]


def _rest(entry: audit.AuditEntry) -> tuple[str, str, str, str, str | None]:
    """After the action's words: its identifier, the target, the change and the address."""
    return entry.action, entry.target, _json(entry.before), _json(entry.after), entry.ip


def _json(summary: dict[str, object] | None) -> str:
    return json.dumps(summary, ensure_ascii=False, sort_keys=True) if summary is not None else ""
