"""Agents in the console: the list (with its download), creating one, and each agent's page.

An agent's page gathers what the admin API spreads over several endpoints: funds, keys, the
callback URL and its deliveries, and (for finance) the deposit's ledger. What a reader may
change shows as forms only when its role may; the handlers in `agent_actions` refuse anyway.
"""

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import ledger
from kaquan.channels import agents, callbacks
from kaquan.identity.permissions import Permission
from kaquan.kit.bounds import BigRowId
from kaquan.kit.money import parse_amount
from kaquan.kit.tables import Format
from kaquan.web.console import agent_actions
from kaquan.web.console.access import ChannelsRead, FinanceRead
from kaquan.web.console.agent_actions import ChannelsWrite
from kaquan.web.console.agent_tables import (
    LEDGER_PAGE,
    AgentRow,
    agent_path,
    agent_row,
    agents_table,
    deliveries_table,
    key_state,
    ledger_table,
)
from kaquan.web.console.rendering import console_router, page
from kaquan.web.deps import RuntimeDep
from kaquan.web.downloads import DOWNLOAD_RESPONSES, table_download
from kaquan.web.i18n import language, translator
from kaquan.web.pages import local_time

router = console_router()
DELIVERIES_PAGE = 20


async def _rows(session: AsyncSession) -> list[AgentRow]:
    return [await agent_row(session, agent) for agent in await agents.list_agents(session)]


@router.get("/admin/agents")
async def agents_page(request: Request, rt: RuntimeDep, admin: ChannelsRead) -> Response:
    """Agents with their prepaid balances, credit limits, live keys and callback URLs."""
    async with rt.db.read() as session:
        rows = await _rows(session)
    return page(request, admin, "agents.html", {"rows": rows})


@router.get("/admin/agents.{fmt}", response_class=Response, responses=DOWNLOAD_RESPONSES)
async def agents_download(request: Request, rt: RuntimeDep, admin: ChannelsRead, fmt: Format) -> Response:
    async with rt.db.read() as session:
        rows = await _rows(session)
    return table_download(agents_table(rows, translator(language(request))), fmt, "agents")


@router.post("/admin/agents")
async def create_agent(
    rt: RuntimeDep,
    admin: ChannelsWrite,
    code: Annotated[str, Form(max_length=100)] = "",
    name: Annotated[str, Form(max_length=300)] = "",
    tier: Annotated[str, Form(max_length=100)] = "",
    currency: Annotated[str, Form(max_length=8)] = "CNY",
    credit_limit: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """A new agent; its credit limit in yuan as typed (empty: none). It gets keys and a callback on its page."""
    limit_minor = parse_amount(credit_limit, currency) if credit_limit.strip() else 0
    async with rt.db.transaction() as session:
        agent = await agents.create_agent(
            rt.db,
            session,
            code=code.strip(),
            name=name.strip(),
            currency=currency,
            credit_limit_minor=limit_minor,
            tier=tier.strip(),
            actor=admin.actor,
        )
    return RedirectResponse(agent_path(agent.code) + "?done=created", status_code=303)


@router.get("/admin/agents/{code}")
async def agent_page(
    request: Request,
    rt: RuntimeDep,
    admin: ChannelsRead,
    code: str,
    ledger_after: BigRowId | None = None,
    deliveries_before: BigRowId | None = None,
    done: str = "",
) -> Response:
    """One agent: funds, keys, callback and deliveries; its ledger for those who read finance."""
    async with rt.db.read() as session:
        agent = await agents.by_code(session, code)
        row = await agent_row(session, agent)
        endpoint = await callbacks.get_endpoint(session, agent.id)
        deliveries = await callbacks.list_deliveries(
            session, agent_id=agent.id, before_id=deliveries_before, limit=DELIVERIES_PAGE
        )
        entries = None
        if Permission.FINANCE_READ in admin.permissions:
            entries = await ledger.entries(session, agent.account_id, after_id=ledger_after, limit=LEDGER_PAGE)
        keys = await agents.keys_of(session, agent.id)
    context = {
        "row": row,
        "agent": agent,
        "keys": keys,
        "endpoint": endpoint,
        "callback_url": callbacks.redacted(endpoint.url) if endpoint else None,
        "deliveries": deliveries,
        "deliveries_next": deliveries[-1].id if len(deliveries) == DELIVERIES_PAGE else None,
        "entries": entries,
        "ledger_next": entries[-1].posting_id if entries and len(entries) == LEDGER_PAGE else None,
        "ledger_paged": ledger_after is not None,
        "deliveries_paged": deliveries_before is not None,
        "key_state": key_state,
        "grace_hours": rt.settings.agent_key_grace_hours,
        "when": local_time(request),
        "done": done,
        "path": agent_path(agent.code),
    }
    return page(request, admin, "agent.html", context)


@router.get("/admin/agents/{code}/ledger.{fmt}", response_class=Response, responses=DOWNLOAD_RESPONSES)
async def ledger_download(request: Request, rt: RuntimeDep, admin: FinanceRead, code: str, fmt: Format) -> Response:
    """The agent's whole deposit ledger, oldest first, times in the merchant's zone."""
    async with rt.db.read() as session:
        agent = await agents.by_code(session, code)
        found: list[ledger.Entry] = []
        while True:
            after = found[-1].posting_id if found else None
            batch = await ledger.entries(session, agent.account_id, after_id=after, limit=ledger.MAX_PAGE)
            found += batch
            if len(batch) < ledger.MAX_PAGE:
                break
    table = ledger_table(agent, found, translator(language(request)), rt.settings.zone())
    return table_download(table, fmt, f"agent-{agent.code}-ledger")


@router.get("/admin/agents/{code}/deliveries.{fmt}", response_class=Response, responses=DOWNLOAD_RESPONSES)
async def deliveries_download(
    request: Request, rt: RuntimeDep, admin: ChannelsRead, code: str, fmt: Format
) -> Response:
    """The agent's callback deliveries, newest first (the latest 5,000)."""
    async with rt.db.read() as session:
        agent = await agents.by_code(session, code)
        rows = await callbacks.list_deliveries(session, agent_id=agent.id, limit=5_000)
    table = deliveries_table(agent, rows, translator(language(request)), rt.settings.zone())
    return table_download(table, fmt, f"agent-{agent.code}-callbacks")


router.routes.extend(agent_actions.router.routes)
