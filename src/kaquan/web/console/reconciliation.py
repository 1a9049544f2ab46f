"""对账 in the console: import a statement, match a period, the worklist of differences, the daily bill fetches.

Finance with finance.read sees everything; finance.write also imports, matches,
annotates, resolves and retries a bill fetch. Every change is a form post
carrying the session's CSRF token. An upload shows its progress (console.js)
and then its result in place: the lines read, new and repeated, or the
rejection with its line and column. Amounts show as ¥12.34, times in Beijing
time; the worklist exports as CSV with a BOM for Chinese Excel.
"""

from datetime import date, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from kaquan import reconciliation
from kaquan.channels import agents, marketplace
from kaquan.identity.permissions import Permission
from kaquan.kit.bounds import BigRowId
from kaquan.kit.errors import BadInput
from kaquan.reconciliation.days import BEIJING
from kaquan.statements import StatementRejected
from kaquan.web.console.rendering import console_router, page, safe_next
from kaquan.web.deps import Principal, RuntimeDep, require
from kaquan.web.i18n import language
from kaquan.web.reconciliation_api import CsvResponse, Filters, import_upload, worklist_csv

router = console_router()

FinanceRead = Annotated[Principal, require(Permission.FINANCE_READ)]
FinanceWrite = Annotated[Principal, require(Permission.FINANCE_WRITE)]
HOME = "/admin/reconciliation"
PAGE = 50


def _day(text: str, name: str) -> date | None:
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise BadInput(f"{text[:20]!r} is not a date like 2026-12-05", field=name) from None


def _filters(source: str, klass: str, state: str, first: str, last: str) -> Filters:
    """The worklist's filters as the form sends them: "" is any source / class; state "" is what is waiting."""
    if klass and klass not in reconciliation.CLASSES:
        raise BadInput(f"unknown class {klass[:40]!r}", allowed=list(reconciliation.CLASSES))
    if state and state != "all" and state not in reconciliation.STATES:
        raise BadInput(f"unknown state {state[:40]!r}", allowed=list(reconciliation.STATES))
    first_day, last_day = _day(first, "from"), _day(last, "to")
    if first_day and last_day and last_day < first_day:
        raise BadInput("the period ends before it starts", first_day=str(first_day), last_day=str(last_day))
    states = reconciliation.OPEN_STATES if not state else None if state == "all" else (state,)
    return Filters(
        source=source.strip() or None,
        first_day=first_day,
        last_day=last_day,
        classes=(klass,) if klass else None,
        states=states,
    )


def _beijing(moment: datetime | None) -> str:
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


async def _worklist_page(
    request: Request, rt: RuntimeDep, admin: Principal, *, query: dict[str, str], after_id: int, **extra: Any
) -> Response:
    where = _filters(query["source"], query["class"], query["state"], query["from"], query["to"])
    lang = language(request)
    async with rt.db.read(stale_ok=True) as session:
        items = await reconciliation.list_differences(
            session,
            source=where.source,
            first_day=where.first_day,
            last_day=where.last_day,
            classes=where.classes,
            states=where.states,
            after_id=after_id,
            limit=PAGE,
        )
        statements = await reconciliation.list_statements(session, limit=10)
        fetches = await reconciliation.list_fetches(session, limit=10)
        stores = [store.code for store in await marketplace.list_stores(session)]
        agent_codes = [agent.code for agent in await agents.list_agents(session)]
        mappings = [mapping.name for mapping in await reconciliation.list_mappings(session)]
    sources = [
        *reconciliation.GATEWAY_SOURCES,
        *(f"marketplace:{code.removeprefix(marketplace.CHANNEL_PREFIX)}" for code in stores),
        *(f"agent:{code}" for code in agent_codes),
        *(f"generic:{name}" for name in mappings),
    ]
    shown = {key: value for key, value in query.items() if value}
    context = {
        "items": items,
        "statements": statements,
        "fetches": fetches,
        "sources": sources,
        "query": query,
        "classes": reconciliation.CLASSES,
        "states": reconciliation.STATES,
        "resolutions": reconciliation.RESOLUTIONS,
        "word": lambda table, key: table.get(key, (key, key))[0 if lang == "zh" else 1] if key else "",
        "CLASS_WORDS": reconciliation.CLASS_WORDS,
        "STATE_WORDS": reconciliation.STATE_WORDS,
        "RESOLUTION_WORDS": reconciliation.RESOLUTION_WORDS,
        "yuan": reconciliation.money,
        "beijing": _beijing,
        "here_query": urlencode(shown),
        "back": HOME + (f"?{urlencode(shown)}" if shown else ""),
        "next_after": items[-1].id if len(items) == PAGE else None,
        **extra,
    }
    return page(request, admin, "reconciliation.html", context)


def _query(source: str = "", klass: str = "", state: str = "", first: str = "", last: str = "") -> dict[str, str]:
    return {"source": source, "class": klass, "state": state, "from": first, "to": last}


@router.get("/admin/reconciliation")
async def worklist(
    request: Request,
    rt: RuntimeDep,
    admin: FinanceRead,
    after_id: BigRowId | None = None,
) -> Response:
    """Filters by query: source, class, state ("" waiting, "all", or one state), from and to (business days)."""
    return await _worklist_page(request, rt, admin, query=_asked(request), after_id=after_id or 0)


def _asked(request: Request) -> dict[str, str]:
    params = request.query_params
    return _query(
        params.get("source", "")[:64],
        params.get("class", "")[:40],
        params.get("state", "")[:20],
        params.get("from", "")[:20],
        params.get("to", "")[:20],
    )


@router.get("/admin/reconciliation/differences.csv", response_class=CsvResponse)
async def worklist_export(request: Request, rt: RuntimeDep, admin: FinanceRead) -> CsvResponse:
    asked = _asked(request)
    return worklist_csv(rt, _filters(asked["source"], asked["class"], asked["state"], asked["from"], asked["to"]))


@router.post("/admin/reconciliation/statements")
async def upload_statement(
    request: Request,
    rt: RuntimeDep,
    admin: FinanceWrite,
    file: Annotated[UploadFile, File()],
    source: Annotated[str, Form(max_length=64)],
) -> Response:
    try:
        imported = await import_upload(rt, admin, file, source.strip())
    except (StatementRejected, reconciliation.StatementWrongAccount) as rejected:  # shown beside the form
        return await _worklist_page(
            request, rt, admin, query=_query(), after_id=0, rejected=rejected, upload_source=source
        )
    return await _worklist_page(request, rt, admin, query=_query(source=imported.source), after_id=0, imported=imported)


@router.post("/admin/reconciliation/match")
async def match_period(
    request: Request,
    rt: RuntimeDep,
    admin: FinanceWrite,
    source: Annotated[str, Form(max_length=64)],
    first_day: Annotated[str, Form(max_length=20)],
    last_day: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    first = _day(first_day, "first_day")
    if first is None:
        raise BadInput("the first day of the period is needed", field="first_day")
    last = _day(last_day, "last_day") or first
    if (last - first).days > 92:
        raise BadInput("match at most 93 days at a time", first_day=str(first), last_day=str(last))
    async with rt.db.transaction() as session:
        summary = await reconciliation.match_period(rt.db, session, source=source, first_day=first, last_day=last)
    query = _query(source=source, first=first.isoformat(), last=last.isoformat())
    return await _worklist_page(request, rt, admin, query=query, after_id=0, matched=summary)


def _back(target: str) -> RedirectResponse:
    return RedirectResponse(safe_next(target, HOME), status_code=303)


@router.post("/admin/reconciliation/differences/{item_id}/annotate")
async def annotate(
    rt: RuntimeDep,
    admin: FinanceWrite,
    item_id: BigRowId,
    note: Annotated[str, Form(max_length=1000)],
    back: Annotated[str, Form(max_length=500)] = HOME,
) -> Response:
    async with rt.db.transaction() as session:
        await reconciliation.annotate(rt.db, session, item_id, note=note, actor=admin.actor)
    return _back(back)


@router.post("/admin/reconciliation/differences/{item_id}/resolve")
async def resolve(
    rt: RuntimeDep,
    admin: FinanceWrite,
    item_id: BigRowId,
    resolution: Annotated[str, Form(max_length=32)],
    note: Annotated[str, Form(max_length=1000)] = "",
    back: Annotated[str, Form(max_length=500)] = HOME,
) -> Response:
    async with rt.db.transaction() as session:
        await reconciliation.resolve(rt.db, session, item_id, resolution=resolution, note=note, actor=admin.actor)
    return _back(back)


@router.post("/admin/reconciliation/bill-fetches/{fetch_id}/retry")
async def retry_fetch(
    rt: RuntimeDep, admin: FinanceWrite, fetch_id: BigRowId, back: Annotated[str, Form(max_length=500)] = HOME
) -> Response:
    async with rt.db.transaction() as session:
        await reconciliation.retry_fetch(rt.db, session, fetch_id, actor=admin.actor)
    return _back(back)
