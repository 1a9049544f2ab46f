"""What the agent page changes: credit limit, top-ups and refunds (finance), keys, callback URL and replays.

Every action is a form post carrying the session's CSRF token, checked with the permission by `require`,
and calls the same service function as the admin API, so the rules (the SSRF guard on callback URLs, the
ledger's floor, idempotent top-up references) hold here too. Most land back on the agent page (303).
A new key secret or callback signing secret is answered with a page that shows it once: it is not stored
in plain text anywhere, so no later page can show it again.
"""

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response

from kaquan.channels import agents, callbacks
from kaquan.channels.agents import refunds
from kaquan.identity.permissions import Permission
from kaquan.kit.bounds import BigRowId
from kaquan.kit.errors import BadInput
from kaquan.kit.money import parse_amount
from kaquan.web.console.agent_tables import agent_path
from kaquan.web.console.rendering import console_router, page
from kaquan.web.deps import Principal, RuntimeDep, require

router = console_router()
ChannelsWrite = Annotated[Principal, require(Permission.CHANNELS_WRITE)]
FinanceWrite = Annotated[Principal, require(Permission.FINANCE_WRITE)]
Confirm = Annotated[str, Form(max_length=8)]


def _back(code: str, done: str) -> RedirectResponse:
    return RedirectResponse(f"{agent_path(code)}?done={done}", status_code=303)


def _confirmed(confirm: str) -> None:
    """A rotation or a revocation breaks the agent's integration: the form asks for a ticked box, and so do we."""
    if confirm != "yes":
        raise BadInput(
            "tick the box to confirm: the agent's integration must switch to the new secret", field="confirm"
        )


def _entries(text: str) -> list[str]:
    """An allowlist as typed: addresses or CIDRs separated by commas, spaces or lines (the service checks each)."""
    return [entry for entry in text.replace(",", " ").split() if entry]


def _secret_page(request: Request, admin: Principal, code: str, kind: str, shown: dict[str, object]) -> Response:
    return page(request, admin, "secret_once.html", {"kind": kind, "back": agent_path(code), **shown})


@router.post("/admin/agents/{code}/profile")
async def update_profile(
    rt: RuntimeDep,
    admin: ChannelsWrite,
    code: str,
    name: Annotated[str, Form(max_length=300)] = "",
    tier: Annotated[str, Form(max_length=100)] = "",
    status: Annotated[Literal["active", "suspended"], Form()] = "active",
) -> Response:
    """Name, price tier and status: a suspended agent's keys stop signing at its next request."""
    async with rt.db.transaction() as session:
        agent = await agents.by_code(session, code)
        await agents.update_agent(
            rt.db, session, agent.id, actor=admin.actor, name=name.strip(), tier=tier.strip(), status=status
        )
        keys = await agents.keys_of(session, agent.id)
    for key in keys:
        rt.agent_auth.forget(key.key_id)
    return _back(code, "profile")


@router.post("/admin/agents/{code}/credit-limit")
async def set_credit_limit(
    rt: RuntimeDep, admin: FinanceWrite, code: str, credit_limit: Annotated[str, Form(max_length=40)] = ""
) -> Response:
    """The credit limit in yuan as typed; the ledger's floor follows (audited)."""
    async with rt.db.transaction() as session:
        agent = await agents.by_code(session, code)
        limit_minor = parse_amount(credit_limit, agent.currency)
        await agents.update_agent(rt.db, session, agent.id, actor=admin.actor, credit_limit_minor=limit_minor)
    return _back(code, "credit")


@router.post("/admin/agents/{code}/topups")
async def top_up(
    rt: RuntimeDep,
    admin: FinanceWrite,
    code: str,
    amount: Annotated[str, Form(max_length=40)] = "",
    reference: Annotated[str, Form(max_length=200)] = "",
    memo: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    """Money the agent paid in, in yuan, with the bank slip's reference: a repeated reference moves nothing."""
    async with rt.db.transaction() as session:
        agent = await agents.by_code(session, code)
        amount_minor = parse_amount(amount, agent.currency)
        await agents.top_up(
            rt.db, session, agent.id, amount_minor, reference=reference.strip(), memo=memo.strip(), actor=admin.actor
        )
    return _back(code, "topup")


@router.post("/admin/agents/{code}/refunds")
async def refund_order(
    rt: RuntimeDep,
    admin: FinanceWrite,
    code: str,
    out_order_no: Annotated[str, Form(max_length=200)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Refund a delivered agent order in full to the deposit; a refunded one is left as it is."""
    async with rt.db.transaction() as session:
        agent = await agents.by_code(session, code)
        refund = await refunds.refund_delivered(
            rt.db, session, agent_id=agent.id, out_order_no=out_order_no.strip(), reason=reason, actor=admin.actor
        )
    return _back(code, "refunded" if refund.refunded else "refunded_before")


@router.post("/admin/agents/{code}/keys")
async def issue_key(
    request: Request,
    rt: RuntimeDep,
    admin: ChannelsWrite,
    code: str,
    ip_allowlist: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    async with rt.db.transaction() as session:
        agent = await agents.by_code(session, code)
        issued = await agents.issue_key(
            rt.db, session, rt.keyring, agent.id, ip_allowlist=_entries(ip_allowlist), actor=admin.actor
        )
    return _secret_page(request, admin, code, "key", {"key_id": issued.key_id, "secret": issued.secret})


@router.post("/admin/agents/{code}/keys/{key_id}/rotate")
async def rotate_key(
    request: Request, rt: RuntimeDep, admin: ChannelsWrite, code: str, key_id: str, confirm: Confirm = ""
) -> Response:
    _confirmed(confirm)
    grace_hours = rt.settings.agent_key_grace_hours
    async with rt.db.transaction() as session:
        agent = await agents.by_code(session, code)
        issued = await agents.rotate_key(
            rt.db, session, rt.keyring, agent.id, key_id, grace=timedelta(hours=grace_hours), actor=admin.actor
        )
    rt.agent_auth.forget(key_id)
    shown = {"key_id": issued.key_id, "secret": issued.secret, "grace_hours": grace_hours}
    return _secret_page(request, admin, code, "rotated", shown)


@router.post("/admin/agents/{code}/keys/{key_id}/revoke")
async def revoke_key(rt: RuntimeDep, admin: ChannelsWrite, code: str, key_id: str, confirm: Confirm = "") -> Response:
    _confirmed(confirm)
    async with rt.db.transaction() as session:
        agent = await agents.by_code(session, code)
        await agents.revoke_key(rt.db, session, agent.id, key_id, actor=admin.actor)
    rt.agent_auth.forget(key_id)
    return _back(code, "revoked")


@router.post("/admin/agents/{code}/keys/{key_id}/allowlist")
async def set_allowlist(
    rt: RuntimeDep,
    admin: ChannelsWrite,
    code: str,
    key_id: str,
    ip_allowlist: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """The addresses the key may sign from; empty: any address."""
    async with rt.db.transaction() as session:
        agent = await agents.by_code(session, code)
        await agents.set_allowlist(rt.db, session, agent.id, key_id, _entries(ip_allowlist), actor=admin.actor)
    rt.agent_auth.forget(key_id)
    return _back(code, "allowlist")


@router.post("/admin/agents/{code}/callback")
async def set_callback(
    request: Request, rt: RuntimeDep, admin: ChannelsWrite, code: str, url: Annotated[str, Form(max_length=500)] = ""
) -> Response:
    """Point callbacks at `url` (refused unless every address it resolves to is public) with a new signing secret."""
    async with rt.db.transaction() as session:
        agent = await agents.by_code(session, code)
        secret = await callbacks.set_endpoint(
            rt.db,
            session,
            rt.keyring,
            agent_id=agent.id,
            url=url,
            allow_private=rt.settings.callbacks_allow_private,
            actor=admin.actor,
        )
    return _secret_page(request, admin, code, "callback", {"url": callbacks.redacted(url.strip()), "secret": secret})


@router.post("/admin/agents/{code}/deliveries/{delivery_id}/replay")
async def replay_delivery(rt: RuntimeDep, admin: ChannelsWrite, code: str, delivery_id: BigRowId) -> Response:
    """Send a delivery again, due now, under the same event id; only one of this agent's own deliveries."""
    async with rt.db.transaction() as session:
        agent = await agents.by_code(session, code)
        found = await callbacks.delivery_detail(session, delivery_id)
        if found.delivery.agent_id != agent.id:
            raise BadInput("that delivery belongs to another agent", field="delivery_id")
        await callbacks.replay(rt.db, session, delivery_id, actor=admin.actor)
    return _back(code, "replayed")
