"""The audit trail, filtered and paged newest first, and downloadable as CSV or XLSX as filtered.

The page says each change in words (`价格：¥19.90 → ¥17.90`, `audit_changes`); the download here is what
a person reads (times in the shop's zone, the change in words beside its raw JSON, kept for machines); the
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
from kaquan.web.console.audit_changes import change_text, changes
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
    lang, when = language(request), local_time(request)
    context = {
        "entries": rows,
        "changes": {e.id: changes(lang, e.action, e.before, e.after, when=when) for e in rows},
        "filters": filters,
        "csv_query": urlencode(chosen),
        "next_page": next_page,
        "export_limit": EXPORT_LIMIT,
        "when": when,
        "action_words": partial(action_words, lang),
        "actions": _action_choices(lang, filters["action"]),
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
    lang, when = language(request), local_time(request)
    header = ["#", t("audit.at_in", zone=rt.settings.timezone), t("audit.actor"), t("audit.action")]
    header += [t("audit.action_code"), t("audit.target"), t("audit.before"), t("audit.after")]
    header += [t("audit.change_words"), t("audit.ip")]
    table = Table(
        t("export.audit"),
        header,
        [
            [
                e.id,
                local(e.at, zone),
                e.actor,
                action_words(lang, e.action) or e.action,
                *_raw(e),
                change_text(lang, e.action, e.before, e.after, when=when),
                e.ip,
            ]
            for e in rows
        ],
    )
    return table_download(table, fmt, stem("audit", zone))


def _action_choices(lang: str, chosen: str) -> list[tuple[str, str]]:
    """(action, words) for the filter, in the order of their words; a chosen action not in the catalogue too."""
    known = sorted(((a, action_words(lang, a) or a) for a in AUDIT_ACTIONS), key=lambda pair: pair[1])
    return known if not chosen or chosen in AUDIT_ACTIONS else [(chosen, chosen), *known]


def _raw(entry: audit.AuditEntry) -> tuple[str, str, str, str]:
    """After the action's words: its identifier, the target and the change as stored (JSON)."""
    return entry.action, entry.target, _json(entry.before), _json(entry.after)


def _json(summary: dict[str, object] | None) -> str:
    return json.dumps(summary, ensure_ascii=False, sort_keys=True) if summary is not None else ""
