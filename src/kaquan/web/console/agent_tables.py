"""What the agent pages show and download: an agent's row, and its lists as tables in the reader's language.

Money is shown as the shop shows it (`¥1,000.00`) and downloaded as yuan with the currency in its own
column; times are the merchant's (the zone named in the header); statuses are words, not stored values.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import ledger
from kaquan.channels import agents, callbacks, schemas
from kaquan.channels.agents import Agent, AgentKey
from kaquan.kit import clock
from kaquan.kit.money import Money, display
from kaquan.kit.tables import Cell, Table
from kaquan.web.i18n import Translate

LEDGER_PAGE = 50
EVENT_TYPES = ("order.delivered", "order.refunded")  # the callbacks agents receive, with words of their own


def agent_path(code: str) -> str:
    return f"/admin/agents/{code}"


@dataclass(frozen=True)
class AgentRow:
    """An agent with its money as shown: the deposit, the credit limit and what it may spend."""

    agent: Agent
    funds: schemas.BalanceOut
    balance: str
    credit_limit: str
    available: str
    credit_limit_yuan: str
    live_keys: int
    callback: str | None


def yuan(minor: int, currency: str) -> str:
    """An amount as a person types it back into a form: `1000.00`, no symbol, no separators."""
    return Money(minor, currency).format().partition(" ")[2]


async def agent_row(session: AsyncSession, agent: Agent) -> AgentRow:
    funds = await agents.funds(session, agent)
    endpoint = await callbacks.get_endpoint(session, agent.id)
    return AgentRow(
        agent=agent,
        funds=funds,
        balance=display(funds.balance_minor, funds.currency),
        credit_limit=display(funds.credit_limit_minor, funds.currency),
        available=display(funds.available_minor, funds.currency),
        credit_limit_yuan=yuan(funds.credit_limit_minor, funds.currency),
        live_keys=sum(1 for key in await agents.keys_of(session, agent.id) if key.revoked_at is None),
        callback=callbacks.redacted(endpoint.url) if endpoint else None,
    )


def key_state(key: AgentKey) -> str:
    """`revoked`, `rotating` (the previous secret still signs) or `live`."""
    if key.revoked_at is not None:
        return "revoked"
    if key.previous_valid_until is not None and key.previous_valid_until > clock.now():
        return "rotating"
    return "live"


class Delivery(Protocol):
    """What the deliveries table reads of a callback delivery."""

    id: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    last_status_code: int | None
    created_at: datetime
    delivered_at: datetime | None


def _local(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    return moment.astimezone(zone) if moment is not None else None


def agents_table(rows: Sequence[AgentRow], t: Translate) -> Table:
    header = [
        t("agents.code"),
        t("agents.name"),
        t("agents.tier"),
        t("agents.status"),
        t("people.currency"),
        t("agents.balance"),
        t("agents.credit_limit"),
        t("agents.available"),
        t("agents.keys"),
        t("agents.callback"),
    ]
    body: list[list[Cell]] = [
        [
            row.agent.code,
            row.agent.name,
            row.agent.tier,
            t(f"agent.status.{row.agent.status}"),
            row.funds.currency,
            yuan(row.funds.balance_minor, row.funds.currency),
            yuan(row.funds.credit_limit_minor, row.funds.currency),
            yuan(row.funds.available_minor, row.funds.currency),
            row.live_keys,
            row.callback or "",
        ]
        for row in rows
    ]
    return Table(t("agents.title"), header, body)


def ledger_table(agent: Agent, entries: Sequence[ledger.Entry], t: Translate, zone: ZoneInfo) -> Table:
    header = [
        t("ledger.id"),
        t("people.time_in", zone=zone.key),
        t("ledger.kind"),
        t("people.currency"),
        t("ledger.amount"),
        t("ledger.reference"),
        t("ledger.memo"),
    ]
    rows = [
        [
            entry.posting_id,
            _local(entry.at, zone),
            t(f"ledger.kind.{entry.kind}"),
            agent.currency,
            yuan(entry.amount_minor, agent.currency),
            entry.reference or "",
            entry.memo,
        ]
        for entry in entries
    ]
    return Table(t("ledger.title_of", code=agent.code), header, rows)


def deliveries_table(agent: Agent, deliveries: Sequence[Delivery], t: Translate, zone: ZoneInfo) -> Table:
    header = [
        t("delivery.id"),
        t("delivery.event"),
        t("delivery.type"),
        t("delivery.status"),
        t("delivery.attempts"),
        t("delivery.last_answer"),
        t("people.time_in", zone=zone.key),
        t("delivery.delivered_at"),
    ]
    rows = [
        [
            d.id,
            d.event_id,
            t(f"event.{d.event_type}") if d.event_type in EVENT_TYPES else d.event_type,
            t(f"delivery.status.{d.status}"),
            d.attempts,
            d.last_status_code,
            _local(d.created_at, zone),
            _local(d.delivered_at, zone),
        ]
        for d in deliveries
    ]
    return Table(t("delivery.title_of", code=agent.code), header, rows)
