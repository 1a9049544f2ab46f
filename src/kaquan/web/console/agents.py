"""Agents with their balances, credit limits, keys and callback URLs."""

from fastapi import Request
from fastapi.responses import Response

from kaquan.channels import agents, callbacks
from kaquan.kit.money import Money
from kaquan.web.console.access import ChannelsRead
from kaquan.web.console.rendering import console_router, page
from kaquan.web.deps import RuntimeDep

router = console_router()


@router.get("/admin/agents")
async def agents_page(request: Request, rt: RuntimeDep, admin: ChannelsRead) -> Response:
    """Agents with their prepaid balances, credit limits, live keys and callback URLs."""
    rows = []
    async with rt.db.read() as session:
        for agent in await agents.list_agents(session):
            funds = await agents.funds(session, agent)
            endpoint = await callbacks.get_endpoint(session, agent.id)
            rows.append(
                {
                    "agent": agent,
                    "balance": Money(funds.balance_minor, funds.currency).format(),
                    "credit_limit": Money(funds.credit_limit_minor, funds.currency).format(),
                    "available": Money(funds.available_minor, funds.currency).format(),
                    "live_keys": sum(1 for key in await agents.keys_of(session, agent.id) if key.revoked_at is None),
                    "callback": callbacks.redacted(endpoint.url) if endpoint else None,
                }
            )
    return page(request, admin, "agents.html", {"rows": rows})
