"""`kaquan channel …`: channels, price lists, quotas, agents, their keys, deposits and callbacks."""

from datetime import timedelta
from typing import Annotated

import typer

from kaquan import ledger
from kaquan.channels import Channel, agents, callbacks
from kaquan.channels import pricing as channels
from kaquan.channels.agents import Agent, refunds
from kaquan.cli.common import console, run
from kaquan.cli.confirm import YesFlag, confirmed
from kaquan.cli.marketplace_cmds import marketplace_app
from kaquan.cli.output import JsonFlag, emit_json, money, money_json, show, table
from kaquan.runtime import Runtime

channel_app = typer.Typer(help="Channels, price lists, agents and their keys.", no_args_is_help=True)
agent_app = typer.Typer(help="Agents (代理商): deposits, credit limits, API keys, callbacks.", no_args_is_help=True)
channel_app.add_typer(agent_app, name="agent")
channel_app.add_typer(marketplace_app, name="marketplace")
ACTOR = "cli"


@channel_app.command("list")
def list_channels(as_json: JsonFlag = False) -> None:
    """Every channel with its fee and warehouse order."""

    async def work(rt: Runtime) -> list[Channel]:
        async with rt.db.read() as session:
            return await channels.list_channels(session)

    found = run(work)
    if as_json:
        emit_json(
            [
                {
                    "code": c.code,
                    "kind": c.kind,
                    "name": c.name,
                    "fee_rate_bp": c.fee_rate_bp,
                    "warehouses": list(c.warehouses),
                    "active": c.active,
                }
                for c in found
            ]
        )
        return
    listed = table("code", "kind", "fee (bp)", "warehouses", "active")
    for channel in found:
        listed.add_row(
            channel.code,
            channel.kind,
            str(channel.fee_rate_bp),
            ",".join(channel.warehouses) or "all",
            str(channel.active),
        )
    show(listed)


@channel_app.command("configure")
def configure(
    channel: Annotated[str, typer.Argument(help="shop, wholesale, api, group_buy or marketplace:<store>")],
    fee_bp: Annotated[int | None, typer.Option(help="fee or commission in basis points (1% = 100)")] = None,
    warehouses: Annotated[str | None, typer.Option(help="warehouse codes in allocation order, comma-separated")] = None,
    active: Annotated[bool | None, typer.Option("--active/--inactive")] = None,
) -> None:
    """Set a channel's fee, warehouse order, or stop it selling."""

    async def work(rt: Runtime) -> None:
        async with rt.db.transaction() as session:
            await channels.configure(
                rt.db,
                session,
                channel,
                actor=ACTOR,
                fee_rate_bp=fee_bp,
                warehouses=[w.strip() for w in warehouses.split(",") if w.strip()] if warehouses is not None else None,
                active=active,
            )

    run(work)
    console.print(f"channel {channel} updated")


@channel_app.command("price")
def set_price(
    channel: Annotated[str, typer.Argument(help="the channel, e.g. api")],
    sku: Annotated[str, typer.Argument(help="SKU code")],
    price_minor: Annotated[int | None, typer.Argument(help="price in minor units (fen/cents)")] = None,
    tier: Annotated[str, typer.Option(help="an agent tier; default: everyone in the channel")] = "",
    remove: Annotated[bool, typer.Option("--remove", help="take the SKU off the list (for --tier)")] = False,
) -> None:
    """Put a SKU on a channel's price list, change its price, or take it off with --remove."""
    if (price_minor is None) != remove:
        raise typer.BadParameter("give a price, or --remove without one", param_hint="PRICE_MINOR")
    for_tier = f" for tier {tier}" if tier else ""

    async def work(rt: Runtime) -> str | None:
        async with rt.db.transaction() as session:
            if price_minor is None:
                await channels.remove_price(rt.db, session, channel, sku, tier=tier, actor=ACTOR)
                return None
            entry = await channels.set_price(rt.db, session, channel, sku, price_minor, tier=tier, actor=ACTOR)
            return money(entry.price_minor, entry.currency)

    price = run(work)
    if price is None:
        console.print(f"{sku} is off the {channel} price list{for_tier}", highlight=False)
    else:
        console.print(f"{sku} costs {price} in {channel}{for_tier}", highlight=False)


@channel_app.command("quota")
def set_quota(
    channel: Annotated[str, typer.Argument()],
    sku: Annotated[str, typer.Argument()],
    max_share_bp: Annotated[
        int | None, typer.Argument(help="the most of the SKU's stock, in basis points; omit to lift")
    ] = None,
) -> None:
    """Hold a channel to a share of a SKU's stock (keep the rest for other channels)."""

    async def work(rt: Runtime) -> None:
        async with rt.db.transaction() as session:
            await channels.set_quota(rt.db, session, channel, sku, max_share_bp, actor=ACTOR)

    run(work)
    console.print(f"{channel} quota for {sku}: {'none' if max_share_bp is None else f'{max_share_bp} bp'}")


@agent_app.command("add")
def add_agent(
    code: Annotated[str, typer.Argument(help="short unique name, e.g. acme")],
    name: Annotated[str, typer.Option(help="display name")],
    currency: str = "CNY",
    credit_limit: Annotated[int, typer.Option(help="how far below zero the balance may go, minor units")] = 0,
    tier: Annotated[str, typer.Option(help="price tier")] = "",
) -> None:
    """Create an agent with an empty deposit."""

    async def work(rt: Runtime) -> int:
        async with rt.db.transaction() as session:
            agent = await agents.create_agent(
                rt.db,
                session,
                code=code,
                name=name,
                currency=currency,
                credit_limit_minor=credit_limit,
                tier=tier,
                actor=ACTOR,
            )
            return agent.id

    console.print(f"agent {code} created (id {run(work)})")


@agent_app.command("list")
def list_agents(as_json: JsonFlag = False) -> None:
    """Agents with their balances."""

    async def work(rt: Runtime) -> list[tuple[Agent, ledger.Balance]]:
        async with rt.db.read() as session:
            return [(a, await ledger.balance(session, a.account_id)) for a in await agents.list_agents(session)]

    found = run(work)
    if as_json:
        emit_json(
            [
                {
                    "code": agent.code,
                    "name": agent.name,
                    "tier": agent.tier,
                    "status": agent.status,
                    "balance": money_json(held.balance_minor, held.currency),
                    "credit_limit": money_json(agent.credit_limit_minor, held.currency),
                }
                for agent, held in found
            ]
        )
        return
    listed = table("code", "name", "tier", "status", "balance", "credit limit")
    for agent, held in found:
        listed.add_row(
            agent.code,
            agent.name,
            agent.tier or "-",
            agent.status,
            money(held.balance_minor, held.currency),
            money(agent.credit_limit_minor, held.currency),
        )
    show(listed)


@agent_app.command("topup")
def top_up(
    code: Annotated[str, typer.Argument()],
    amount_minor: Annotated[int, typer.Argument(help="minor units; negative for an adjustment down")],
    reference: Annotated[str, typer.Option(help="the payment's reference (bank slip); a repeat is not booked twice")],
    memo: str = "",
    yes: YesFlag = False,
) -> None:
    """Book money an agent paid in (预存款); a negative amount (an adjustment down) asks first."""
    if amount_minor < 0:
        confirmed(f"take {-amount_minor} minor units off {code}'s deposit", yes=yes)

    async def work(rt: Runtime) -> ledger.Balance:
        async with rt.db.transaction() as session:
            agent = await agents.by_code(session, code)
            return await agents.top_up(
                rt.db, session, agent.id, amount_minor, reference=reference, memo=memo, actor=ACTOR
            )

    held = run(work)
    console.print(f"{code}: balance {money(held.balance_minor, held.currency)}", highlight=False)


@agent_app.command("refund")
def refund_order(
    code: Annotated[str, typer.Argument()],
    out_order_no: Annotated[str, typer.Argument(help="the agent's own order number")],
    reason: Annotated[str, typer.Option(help="why, for the order's history and the audit trail (1-300 characters)")],
    yes: YesFlag = False,
) -> None:
    """Refund a delivered order of the agent: its codes are voided and its price goes back to the deposit."""
    confirmed(f"refund {code}'s order {out_order_no}, voiding its codes", yes=yes)

    async def work(rt: Runtime) -> tuple[refunds.Refund, ledger.Balance]:
        async with rt.db.transaction() as session:
            agent = await agents.by_code(session, code)
            refund = await refunds.refund_delivered(
                rt.db, session, agent_id=agent.id, out_order_no=out_order_no, reason=reason, actor=ACTOR
            )
            return refund, await ledger.balance(session, agent.account_id)

    refund, held = run(work)
    order = refund.order
    if refund.refunded:
        console.print(
            f"order {order.number} ({out_order_no}) refunded: {money(order.total_minor, order.currency)} back",
            highlight=False,
        )
    else:
        console.print(f"order {order.number} ({out_order_no}) was refunded already; nothing moved", highlight=False)
    console.print(f"{code}: balance {money(held.balance_minor, held.currency)}", highlight=False)


@agent_app.command("key")
def issue_key(
    code: Annotated[str, typer.Argument()],
    ip: Annotated[list[str] | None, typer.Option(help="allowed IP or CIDR; repeat for several")] = None,
) -> None:
    """Issue an API key; its secret is printed once."""

    async def work(rt: Runtime) -> agents.IssuedKey:
        async with rt.db.transaction() as session:
            agent = await agents.by_code(session, code)
            return await agents.issue_key(rt.db, session, rt.keyring, agent.id, ip_allowlist=ip or [], actor=ACTOR)

    issued = run(work)
    console.print("the secret is shown once; give it to the agent over a safe channel:", highlight=False)
    console.print(f"  key id: {issued.key_id}", highlight=False, soft_wrap=True)
    console.print(f"  secret: {issued.secret}", highlight=False, soft_wrap=True)


@agent_app.command("rotate")
def rotate_key(
    code: Annotated[str, typer.Argument()], key_id: Annotated[str, typer.Argument()], yes: YesFlag = False
) -> None:
    """A new secret for a key; the old one keeps working for KAQUAN_AGENT_KEY_GRACE_HOURS."""
    confirmed(f"replace the secret of {code}'s key {key_id}", yes=yes)

    async def work(rt: Runtime) -> agents.IssuedKey:
        async with rt.db.transaction() as session:
            agent = await agents.by_code(session, code)
            return await agents.rotate_key(
                rt.db,
                session,
                rt.keyring,
                agent.id,
                key_id,
                grace=timedelta(hours=rt.settings.agent_key_grace_hours),
                actor=ACTOR,
            )

    issued = run(work)
    console.print(f"  new secret: {issued.secret}", highlight=False, soft_wrap=True)


@agent_app.command("revoke")
def revoke_key(
    code: Annotated[str, typer.Argument()], key_id: Annotated[str, typer.Argument()], yes: YesFlag = False
) -> None:
    """Revoke a key at once."""
    confirmed(f"revoke {code}'s key {key_id} now", yes=yes)

    async def work(rt: Runtime) -> None:
        async with rt.db.transaction() as session:
            agent = await agents.by_code(session, code)
            await agents.revoke_key(rt.db, session, agent.id, key_id, actor=ACTOR)

    run(work)
    console.print(f"key {key_id} revoked")


@agent_app.command("callback")
def set_callback(code: Annotated[str, typer.Argument()], url: Annotated[str, typer.Argument()]) -> None:
    """Send the agent's order callbacks to URL; prints the signing secret once."""

    async def work(rt: Runtime) -> str:
        async with rt.db.transaction() as session:
            agent = await agents.by_code(session, code)
            return await callbacks.set_endpoint(
                rt.db,
                session,
                rt.keyring,
                agent_id=agent.id,
                url=url,
                allow_private=rt.settings.callbacks_allow_private,
                actor=ACTOR,
            )

    secret = run(work)
    console.print(f"  signing secret: {secret}", highlight=False, soft_wrap=True)
