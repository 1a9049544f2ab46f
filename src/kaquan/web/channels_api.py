"""The admin API for channels, price lists, quotas, agents, their keys, callbacks and balances."""

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import ledger
from kaquan.channels import Channel, agents, callbacks
from kaquan.channels import pricing as channels
from kaquan.channels.agents import Agent, AgentKey, refunds
from kaquan.identity.permissions import Permission
from kaquan.kit.bounds import BigRowId, Id, Int32, Int64
from kaquan.web.content import JSON_ONLY
from kaquan.web.deps import Principal, RuntimeDep, require

router = APIRouter(prefix="/admin/api", tags=["channels"], dependencies=JSON_ONLY)

ChannelsRead = Annotated[Principal, require(Permission.CHANNELS_READ)]
ChannelsWrite = Annotated[Principal, require(Permission.CHANNELS_WRITE)]
FinanceRead = Annotated[Principal, require(Permission.FINANCE_READ)]
FinanceWrite = Annotated[Principal, require(Permission.FINANCE_WRITE)]


class _Body(BaseModel):
    """Strict: these bodies move money and set prices, so `"100"` or `true` for an integer is refused, not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ChannelChange(_Body):
    name: str | None = Field(default=None, max_length=200)
    fee_rate_bp: Int32 | None = None
    warehouses: list[str] | None = None
    active: bool | None = None


class PriceIn(_Body):
    sku: str
    price_minor: Int32
    tier: str = ""


class QuotaIn(_Body):
    sku: str
    max_share_bp: Int32 | None


class AgentIn(_Body):
    code: str
    name: str = Field(min_length=1, max_length=200)
    currency: str = "CNY"
    credit_limit_minor: Int64 = 0
    tier: str = Field(default="", max_length=32)


class AgentChange(_Body):
    name: str | None = Field(default=None, max_length=200)
    tier: str | None = Field(default=None, max_length=32)
    status: Literal["active", "suspended"] | None = None


class CreditLimitIn(_Body):
    credit_limit_minor: Int64


class TopUpIn(_Body):
    amount_minor: Int64
    reference: str
    memo: str = Field(default="", max_length=300)


class RefundIn(_Body):
    reason: str


class KeyIn(_Body):
    ip_allowlist: list[str] = Field(default_factory=list, max_length=64)


class CallbackIn(_Body):
    url: str = Field(max_length=500)


IsoTime = Annotated[
    datetime,
    PlainSerializer(lambda moment: moment.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""A time as Python's `isoformat()` writes it (`2026-11-25T08:00:00.123456+00:00`)."""


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChannelOut(_Out):
    id: int
    code: str
    kind: str
    name: str
    fee_rate_bp: int
    warehouses: list[str]
    active: bool

    @classmethod
    def of(cls, channel: Channel) -> "ChannelOut":
        return cls.model_validate({"id": channel.id, **channels.describe(channel)})


class PriceOut(_Out):
    sku: str
    price_minor: int
    currency: str


class PriceSetOut(_Out):
    sku: str
    tier: str
    price_minor: int
    currency: str


class PriceRemovedOut(_Out):
    sku: str
    tier: str
    removed: bool


class QuotaOut(_Out):
    sku: str
    max_share_bp: int | None


class AgentOut(_Out):
    """An agent with its funds: `available_minor` is the balance plus the credit limit."""

    id: int
    code: str
    name: str
    tier: str
    currency: str
    credit_limit_minor: int
    status: str
    balance_minor: int
    available_minor: int
    created_at: IsoTime


class KeyOut(_Out):
    key_id: str
    ip_allowlist: list[str]
    created_at: IsoTime
    rotated_at: IsoTime | None
    previous_valid_until: IsoTime | None
    revoked_at: IsoTime | None

    @classmethod
    def of(cls, key: AgentKey) -> "KeyOut":
        return cls(
            key_id=key.key_id,
            ip_allowlist=list(key.ip_allowlist),
            created_at=key.created_at,
            rotated_at=key.rotated_at,
            previous_valid_until=key.previous_valid_until,
            revoked_at=key.revoked_at,
        )


class AgentDetailOut(AgentOut):
    keys: list[KeyOut]
    callback_url: str | None


class RefundOut(_Out):
    """`refunded: false` when the order was refunded before (the answer is then the order as it is)."""

    number: str
    out_order_no: str
    status: str
    quantity: int
    total_minor: int
    currency: str
    refunded: bool


class LedgerLineOut(_Out):
    id: int
    at: IsoTime
    kind: str
    amount_minor: int
    reference: str
    memo: str


class LedgerCheckOut(_Out):
    ok: bool
    problems: list[str]


class IssuedKeyOut(_Out):
    key_id: str
    secret: str
    note: str


class RotatedKeyOut(_Out):
    key_id: str
    secret: str
    previous_secret_valid_hours: int


class CallbackSetOut(_Out):
    url: str
    secret: str
    note: str


async def _agent(session: AsyncSession, agent: Agent) -> dict[str, object]:
    funds = await agents.funds(session, agent)
    return {
        "id": agent.id,
        **agents.describe(agent),
        "balance_minor": funds.balance_minor,
        "available_minor": funds.available_minor,
        "created_at": agent.created_at,
    }


async def _agent_out(session: AsyncSession, agent: Agent) -> AgentOut:
    return AgentOut.model_validate(await _agent(session, agent))


@router.get("/channels")
async def list_channels(rt: RuntimeDep, admin: ChannelsRead) -> list[ChannelOut]:
    async with rt.db.read() as session:
        return [ChannelOut.of(channel) for channel in await channels.list_channels(session)]


@router.put("/channels/{code}")
async def configure_channel(rt: RuntimeDep, admin: ChannelsWrite, code: str, body: ChannelChange) -> ChannelOut:
    async with rt.db.transaction() as session:
        channel = await channels.configure(
            rt.db,
            session,
            code,
            actor=admin.actor,
            fee_rate_bp=body.fee_rate_bp,
            warehouses=body.warehouses,
            active=body.active,
            name=body.name,
        )
        return ChannelOut.of(channel)


@router.get("/channels/{code}/prices")
async def list_prices(rt: RuntimeDep, admin: ChannelsRead, code: str, tier: str = "") -> list[PriceOut]:
    async with rt.db.read() as session:
        channel = await channels.get_channel(session, code)
        return [
            PriceOut(sku=p.sku.code, price_minor=p.price_minor, currency=p.currency)
            for p in await channels.price_list(session, channel, tier)
        ]


@router.post("/channels/{code}/prices", status_code=201)
async def set_price(rt: RuntimeDep, admin: ChannelsWrite, code: str, body: PriceIn) -> PriceSetOut:
    async with rt.db.transaction() as session:
        entry = await channels.set_price(
            rt.db, session, code, body.sku, body.price_minor, tier=body.tier, actor=admin.actor
        )
        return PriceSetOut(sku=body.sku, tier=entry.tier, price_minor=entry.price_minor, currency=entry.currency)


@router.delete("/channels/{code}/prices/{sku}")
async def remove_price(rt: RuntimeDep, admin: ChannelsWrite, code: str, sku: str, tier: str = "") -> PriceRemovedOut:
    async with rt.db.transaction() as session:
        await channels.remove_price(rt.db, session, code, sku, tier=tier, actor=admin.actor)
    return PriceRemovedOut(sku=sku, tier=tier, removed=True)


@router.put("/channels/{code}/quotas")
async def set_quota(rt: RuntimeDep, admin: ChannelsWrite, code: str, body: QuotaIn) -> QuotaOut:
    async with rt.db.transaction() as session:
        await channels.set_quota(rt.db, session, code, body.sku, body.max_share_bp, actor=admin.actor)
    return QuotaOut(sku=body.sku, max_share_bp=body.max_share_bp)


@router.get("/agents")
async def list_agents(rt: RuntimeDep, admin: ChannelsRead) -> list[AgentOut]:
    async with rt.db.read() as session:
        return [await _agent_out(session, agent) for agent in await agents.list_agents(session)]


@router.post("/agents", status_code=201)
async def create_agent(rt: RuntimeDep, admin: ChannelsWrite, body: AgentIn) -> AgentOut:
    async with rt.db.transaction() as session:
        agent = await agents.create_agent(
            rt.db,
            session,
            code=body.code,
            name=body.name,
            currency=body.currency,
            credit_limit_minor=body.credit_limit_minor,
            tier=body.tier,
            actor=admin.actor,
        )
        return await _agent_out(session, agent)


@router.get("/agents/{agent_id}")
async def get_agent(rt: RuntimeDep, admin: ChannelsRead, agent_id: Id) -> AgentDetailOut:
    async with rt.db.read() as session:
        agent = await agents.get_agent(session, agent_id)
        endpoint = await callbacks.get_endpoint(session, agent_id)
        return AgentDetailOut.model_validate(
            {
                **await _agent(session, agent),
                "keys": [KeyOut.of(key) for key in await agents.keys_of(session, agent_id)],
                "callback_url": callbacks.redacted(endpoint.url) if endpoint else None,
            }
        )


@router.patch("/agents/{agent_id}")
async def update_agent(rt: RuntimeDep, admin: ChannelsWrite, agent_id: Id, body: AgentChange) -> AgentOut:
    async with rt.db.transaction() as session:
        agent = await agents.update_agent(
            rt.db, session, agent_id, actor=admin.actor, tier=body.tier, status=body.status, name=body.name
        )
        shown = await _agent_out(session, agent)
        keys = await agents.keys_of(session, agent_id)
    for key in keys:  # a suspension (or a new tier) holds for this process's next request, not 2 s later
        rt.agent_auth.forget(key.key_id)
    return shown


@router.put("/agents/{agent_id}/credit-limit")
async def set_credit_limit(rt: RuntimeDep, admin: FinanceWrite, agent_id: Id, body: CreditLimitIn) -> AgentOut:
    async with rt.db.transaction() as session:
        agent = await agents.update_agent(
            rt.db, session, agent_id, actor=admin.actor, credit_limit_minor=body.credit_limit_minor
        )
        return await _agent_out(session, agent)


@router.post("/agents/{agent_id}/topups", status_code=201)
async def top_up(rt: RuntimeDep, admin: FinanceWrite, agent_id: Id, body: TopUpIn) -> AgentOut:
    async with rt.db.transaction() as session:
        await agents.top_up(
            rt.db, session, agent_id, body.amount_minor, reference=body.reference, memo=body.memo, actor=admin.actor
        )
        return await _agent_out(session, await agents.get_agent(session, agent_id))


@router.post("/agents/{agent_id}/orders/{out_order_no}/refund")
async def refund_order(
    rt: RuntimeDep, admin: FinanceWrite, agent_id: Id, out_order_no: str, body: RefundIn
) -> RefundOut:
    """Refund a delivered agent order (after sale); a refunded one answers as it is, with `refunded: false`."""
    async with rt.db.transaction() as session:
        refund = await refunds.refund_delivered(
            rt.db, session, agent_id=agent_id, out_order_no=out_order_no, reason=body.reason, actor=admin.actor
        )
    order = refund.order
    return RefundOut(
        number=order.number,
        out_order_no=order.idempotency_key,
        status=order.status,
        quantity=order.quantity,
        total_minor=order.total_minor,
        currency=order.currency,
        refunded=refund.refunded,
    )


@router.get("/agents/{agent_id}/ledger")
async def agent_ledger(
    rt: RuntimeDep, admin: FinanceRead, agent_id: Id, after_id: BigRowId | None = None, limit: Int32 = 100
) -> list[LedgerLineOut]:
    async with rt.db.read() as session:
        agent = await agents.get_agent(session, agent_id)
        found = await ledger.entries(session, agent.account_id, after_id=after_id, limit=min(max(limit, 1), 500))
    return [
        LedgerLineOut(
            id=e.posting_id, at=e.at, kind=e.kind, amount_minor=e.amount_minor, reference=e.reference, memo=e.memo
        )
        for e in found
    ]


@router.get("/ledger/check")
async def ledger_check(rt: RuntimeDep, admin: FinanceRead) -> LedgerCheckOut:
    async with rt.db.read() as session:
        result = await ledger.check(session)
    return LedgerCheckOut(ok=result.ok, problems=list(result.problems))


@router.get("/agents/{agent_id}/keys")
async def list_keys(rt: RuntimeDep, admin: ChannelsRead, agent_id: Id) -> list[KeyOut]:
    async with rt.db.read() as session:
        await agents.get_agent(session, agent_id)
        return [KeyOut.of(key) for key in await agents.keys_of(session, agent_id)]


@router.post("/agents/{agent_id}/keys", status_code=201)
async def issue_key(rt: RuntimeDep, admin: ChannelsWrite, agent_id: Id, body: KeyIn) -> IssuedKeyOut:
    async with rt.db.transaction() as session:
        issued = await agents.issue_key(
            rt.db, session, rt.keyring, agent_id, ip_allowlist=body.ip_allowlist, actor=admin.actor
        )
    return IssuedKeyOut(key_id=issued.key_id, secret=issued.secret, note="the secret is shown once: store it now")


@router.post("/agents/{agent_id}/keys/{key_id}/rotate")
async def rotate_key(rt: RuntimeDep, admin: ChannelsWrite, agent_id: Id, key_id: str) -> RotatedKeyOut:
    grace = timedelta(hours=rt.settings.agent_key_grace_hours)
    async with rt.db.transaction() as session:
        issued = await agents.rotate_key(rt.db, session, rt.keyring, agent_id, key_id, grace=grace, actor=admin.actor)
    rt.agent_auth.forget(key_id)
    return RotatedKeyOut(
        key_id=issued.key_id,
        secret=issued.secret,
        previous_secret_valid_hours=rt.settings.agent_key_grace_hours,
    )


@router.put("/agents/{agent_id}/keys/{key_id}/allowlist")
async def set_allowlist(rt: RuntimeDep, admin: ChannelsWrite, agent_id: Id, key_id: str, body: KeyIn) -> KeyOut:
    async with rt.db.transaction() as session:
        key = await agents.set_allowlist(rt.db, session, agent_id, key_id, body.ip_allowlist, actor=admin.actor)
        shown = KeyOut.of(key)
    rt.agent_auth.forget(key_id)
    return shown


@router.delete("/agents/{agent_id}/keys/{key_id}")
async def revoke_key(rt: RuntimeDep, admin: ChannelsWrite, agent_id: Id, key_id: str) -> KeyOut:
    async with rt.db.transaction() as session:
        shown = KeyOut.of(await agents.revoke_key(rt.db, session, agent_id, key_id, actor=admin.actor))
    rt.agent_auth.forget(key_id)
    return shown


@router.put("/agents/{agent_id}/callback")
async def set_callback(rt: RuntimeDep, admin: ChannelsWrite, agent_id: Id, body: CallbackIn) -> CallbackSetOut:
    async with rt.db.transaction() as session:
        await agents.get_agent(session, agent_id)
        secret = await callbacks.set_endpoint(
            rt.db,
            session,
            rt.keyring,
            agent_id=agent_id,
            url=body.url,
            allow_private=rt.settings.callbacks_allow_private,
            actor=admin.actor,
        )
    return CallbackSetOut(url=callbacks.redacted(body.url), secret=secret, note="the signing secret is shown once")
