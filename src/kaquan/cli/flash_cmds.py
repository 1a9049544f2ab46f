"""`kaquan flash …`: Flash-sale events: schedule, list, show, end."""

from typing import Annotated

import typer
from pydantic import ValidationError

from kaquan.buyers.service import any_channel
from kaquan.cli import when
from kaquan.cli.common import console, run
from kaquan.cli.confirm import YesFlag, confirmed
from kaquan.cli.output import JsonFlag, emit_json, local_time, money, show, table
from kaquan.flashsale import service
from kaquan.flashsale.schemas import EventCreate, EventOut
from kaquan.runtime import Runtime

flash_app = typer.Typer(help="Flash-sale events: schedule, list, show, end.", no_args_is_help=True)
ACTOR = "cli"


@flash_app.command("create")
def create(
    sku: Annotated[str, typer.Option(help="SKU code or id (unique-code SKUs only)")],
    ends_at: Annotated[str, typer.Option(help='ISO 8601 with a time zone, or relative to now: "+2h", "+1d"')],
    stock: Annotated[int, typer.Option(help="units taken from central stock for the event")],
    price: Annotated[int, typer.Option(help="event price per unit in minor units (fen/cents)")],
    starts_at: Annotated[str, typer.Option(help='ISO 8601 with a time zone, "now", or relative: "+1h"')] = "now",
    limit: Annotated[int, typer.Option(help="most units one buyer may win")] = 1,
    channel: Annotated[str | None, typer.Option(help="only this channel may buy (default: every channel)")] = None,
    name: Annotated[str, typer.Option(help="shown to buyers (default: the SKU's name)")] = "",
    verified: Annotated[
        bool | None,
        typer.Option(
            "--verified/--unverified",
            help="buyers must verify a contact (the limit counts it); default: on when codes can be sent",
        ),
    ] = None,
    per_ip_limit: Annotated[
        int | None, typer.Option(help="most units won per client address (default: 10 × --limit)")
    ] = None,
    per_device_limit: Annotated[
        int | None, typer.Option(help="most units won per device cookie (default: 2 × --limit)")
    ] = None,
) -> None:
    """Schedule a flash sale; one starting now takes its stock at once or is refused."""
    try:
        data = EventCreate(
            name=name,
            sku=sku,
            starts_at=when.moment(starts_at, "--starts-at"),
            ends_at=when.moment(ends_at, "--ends-at"),
            stock=stock,
            price_minor=price,
            per_buyer_limit=limit,
            channel=channel,
            requires_verified_buyer=verified,
            per_ip_limit=per_ip_limit,
            per_device_limit=per_device_limit,
        )
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(part) for part in problem["loc"])
        raise typer.BadParameter(f"{field}: {problem['msg']}") from None

    async def work(rt: Runtime) -> EventOut:
        async with rt.db.transaction() as session:
            return EventOut.of(
                await service.create_event(
                    rt.db, session, data, actor=ACTOR, verification_available=any_channel(rt.settings)
                )
            )

    event = run(work)
    console.print(
        f"flash-sale event {event.id} {event.status}: {event.stock} units of SKU {event.sku_id}"
        f" from {local_time(event.starts_at)} to {local_time(event.ends_at)}",
        highlight=False,
    )
    console.print(
        f"buyers {'must verify a contact' if event.requires_verified_buyer else 'are NOT verified'};"
        f" at most {event.per_buyer_limit} per buyer, {event.per_ip_limit} per address,"
        f" {event.per_device_limit} per device",
        highlight=False,
    )


@flash_app.command("list")
def list_events(as_json: JsonFlag = False) -> None:
    """Events, newest first; --json prints the admin API's event objects (amounts as *_minor)."""

    async def work(rt: Runtime) -> list[EventOut]:
        async with rt.db.read() as session:
            return [EventOut.of(event) for event in await service.list_events(session)]

    found = run(work)
    if as_json:
        emit_json([event.model_dump(mode="json") for event in found])
        return
    listed = table("id", "name", "SKU", "status", "starts", "ends", "stock", "allotted", "price", "limit", "channel")
    for event in found:
        listed.add_row(
            str(event.id),
            event.name,
            str(event.sku_id),
            event.status,
            local_time(event.starts_at),
            local_time(event.ends_at),
            str(event.stock),
            str(event.allotted),
            money(event.price_minor, event.currency),
            str(event.per_buyer_limit),
            event.channel or "all",
        )
    show(listed)


@flash_app.command("show")
def show_event(event_id: Annotated[int, typer.Argument(help="event id")]) -> None:
    """One event with its live counters (units won, held, gate tokens) as JSON."""

    async def work(rt: Runtime) -> EventOut:
        return await rt.flash.details(event_id)

    emit_json(run(work).model_dump(mode="json"))


@flash_app.command("end")
def end(event_id: Annotated[int, typer.Argument(help="event id")], yes: YesFlag = False) -> None:
    """End an event now: what it still holds goes back to central stock."""
    confirmed(f"end flash-sale event {event_id} now", yes=yes)

    async def work(rt: Runtime) -> EventOut:
        return EventOut.of(await rt.flash.end_event(event_id, actor=ACTOR))

    event = run(work)
    console.print(f"flash-sale event {event.id} ended: {event.released} unit(s) back in stock", highlight=False)
