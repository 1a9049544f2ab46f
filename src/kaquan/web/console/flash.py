"""Flash-sale events in the console: the list (with exports), scheduling one, the live page, ending, reconciling.

Every action calls what the admin API calls (`flashsale.service.create_event`, `Runtime.flash`), so the
rules (stock taken at the start, limits, verified buyers) live there. Times are typed and shown in the
merchant's zone; prices are typed in yuan and kept in minor units. The live page polls
`/admin/flash/{id}/live` (same origin, `static/flash_live.js`) for the counters.
"""

from typing import Annotated, Literal

from fastapi import Form, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from kaquan.buyers.service import any_channel
from kaquan.catalog import service as catalog
from kaquan.flashsale import service
from kaquan.flashsale.schemas import DEVICE_LIMIT_FACTOR, IP_LIMIT_FACTOR, EventCreate, EventOut
from kaquan.identity.permissions import Permission
from kaquan.kit import clock
from kaquan.kit.bounds import Id
from kaquan.kit.money import display, parse_amount
from kaquan.kit.tables import Format, Table
from kaquan.web.console.local_input import local_moment, zone_label
from kaquan.web.console.rendering import console_router, form_model, page
from kaquan.web.deps import Principal, RuntimeDep, require
from kaquan.web.downloads import PAGE_OR_DOWNLOAD, table_download
from kaquan.web.i18n import Translate, language, translator
from kaquan.web.pages import local_time

router = console_router()

FlashRead = Annotated[Principal, require(Permission.FLASHSALE_READ)]
FlashWrite = Annotated[Principal, require(Permission.FLASHSALE_WRITE)]
Verified = Literal["default", "yes", "no"]
LIST = "/admin/flash"


def _path(event_id: int) -> str:
    return f"{LIST}/{event_id}"


class LiveCounters(BaseModel):
    """What the live page shows and its script refreshes: numbers, and words for the states."""

    status: str
    status_word: str
    sold: int
    purchases: int
    held: int
    gate_tokens: int | None = Field(description="units the gate still admits; None: the gate is not loaded")
    gate: str
    queued: int = Field(description="purchases of the event waiting in this process's commit queue")
    refreshed: str = Field(description="when, in the merchant's zone")


def live_counters(event: EventOut, queued: int, t: Translate, refreshed: str) -> LiveCounters:
    if event.gate_open is None:
        gate = t("flash.gate.unloaded")
    else:
        gate = t("flash.gate.open") if event.gate_open else t("flash.gate.closed")
    return LiveCounters(
        status=event.status,
        status_word=t(f"flash.status.{event.status}"),
        sold=event.sold or 0,
        purchases=event.purchases or 0,
        held=event.held or 0,
        gate_tokens=event.gate_tokens,
        gate=gate,
        queued=queued,
        refreshed=refreshed,
    )


_EXPORT_HEADER = (
    "flash.id",
    "flash.name",
    "flash.sku",
    "flash.status",
    "flash.starts",
    "flash.ends",
    "flash.price",
    "flash.stock",
    "flash.allotted",
    "flash.released",
    "flash.per_buyer",
    "flash.created_by",
)


@router.get("/admin/flash", responses=PAGE_OR_DOWNLOAD)
async def events_page(
    request: Request, rt: RuntimeDep, admin: FlashRead, fmt: Annotated[Format | None, Query(alias="format")] = None
) -> Response:
    """Events newest first; `?format=csv|xlsx` downloads the list."""
    async with rt.db.read() as session:
        events = await service.list_events(session)
        skus = {sku_id: await catalog.get_sku(session, sku_id) for sku_id in {e.sku_id for e in events}}
    t = translator(language(request))
    when = local_time(request)
    if fmt is not None:
        table = Table(
            t("flash.title"),
            [t(key) for key in _EXPORT_HEADER],
            [
                [
                    e.id,
                    e.name,
                    skus[e.sku_id].code,
                    t(f"flash.status.{e.status}"),
                    when(e.starts_at),
                    when(e.ends_at),
                    display(e.price_minor, e.currency),
                    e.stock,
                    e.allotted,
                    e.released,
                    e.per_buyer_limit,
                    e.created_by,
                ]
                for e in events
            ],
        )
        return table_download(table, fmt, "flash-events")
    zone = rt.settings.zone()
    context = {
        "events": events,
        "skus": skus,
        "when": when,
        "zone": zone_label(zone, clock.now()),
        "verification_available": any_channel(rt.settings),
        "now_local": clock.now().astimezone(zone).strftime("%Y-%m-%dT%H:%M"),
        "ip_factor": IP_LIMIT_FACTOR,
        "device_factor": DEVICE_LIMIT_FACTOR,
    }
    return page(request, admin, "flash.html", context)


@router.post("/admin/flash")
async def create_event(
    rt: RuntimeDep,
    admin: FlashWrite,
    sku: Annotated[str, Form(max_length=64)],
    starts_at: Annotated[str, Form(max_length=40)],
    ends_at: Annotated[str, Form(max_length=40)],
    stock: Annotated[str, Form(max_length=12)],
    price: Annotated[str, Form(max_length=40)],
    name: Annotated[str, Form(max_length=200)] = "",
    per_buyer_limit: Annotated[str, Form(max_length=12)] = "1",
    per_ip_limit: Annotated[str, Form(max_length=12)] = "",
    per_device_limit: Annotated[str, Form(max_length=12)] = "",
    channel: Annotated[str, Form(max_length=64)] = "",
    verified: Annotated[Verified, Form()] = "default",
) -> Response:
    """Schedule an event from the form: times in the merchant's zone, the price in yuan."""
    zone = rt.settings.zone()
    start, end = local_moment(starts_at, zone, field="starts_at"), local_moment(ends_at, zone, field="ends_at")
    async with rt.db.transaction() as session:
        target = await catalog.get_sku(session, sku.strip())
        data = form_model(
            EventCreate,
            name=name,
            sku=target.code,
            starts_at=start,
            ends_at=end,
            stock=stock.strip() or None,
            price_minor=parse_amount(price, target.currency),
            per_buyer_limit=per_buyer_limit.strip() or 1,
            per_ip_limit=per_ip_limit.strip() or None,
            per_device_limit=per_device_limit.strip() or None,
            channel=channel.strip() or None,
            requires_verified_buyer=None if verified == "default" else verified == "yes",
        )
        event = await service.create_event(
            rt.db,
            session,
            data,
            actor=admin.actor,
            ip=admin.ip,
            verification_available=any_channel(rt.settings),
        )
    return RedirectResponse(_path(event.id), status_code=303)


@router.get("/admin/flash/{event_id}")
async def live_page(request: Request, rt: RuntimeDep, admin: FlashRead, event_id: Id) -> Response:
    """The event with its counters; the page refreshes them itself every few seconds."""
    event = await rt.flash.details(event_id)
    async with rt.db.read() as session:
        sku = await catalog.get_sku(session, event.sku_id)
    t = translator(language(request))
    context = {
        "event": event,
        "sku": sku,
        "when": local_time(request),
        "counters": live_counters(event, rt.flash.queued(event_id), t, local_time(request)(clock.now())),
    }
    return page(request, admin, "flash_live.html", context)


@router.get("/admin/flash/{event_id}/live", response_class=JSONResponse)
async def live_counts(
    request: Request, response: Response, rt: RuntimeDep, admin: FlashRead, event_id: Id
) -> LiveCounters:
    """The live page's counters as JSON, for its own script (same origin, the session cookie)."""
    event = await rt.flash.details(event_id)
    response.headers["Cache-Control"] = "no-store"
    t = translator(language(request))
    return live_counters(event, rt.flash.queued(event_id), t, local_time(request)(clock.now()))


@router.post("/admin/flash/{event_id}/end")
async def end_event(rt: RuntimeDep, admin: FlashWrite, event_id: Id) -> Response:
    """End now: what the event still holds goes back to central stock (audited by the service)."""
    await rt.flash.end_event(event_id, actor=admin.actor, ip=admin.ip)
    return RedirectResponse(_path(event_id), status_code=303)


@router.post("/admin/flash/{event_id}/reconcile")
async def reconcile(rt: RuntimeDep, admin: FlashWrite, event_id: Id) -> Response:
    """Re-derive the event's gate from the database now."""
    async with rt.db.read() as session:
        await service.get_event(session, event_id)  # an unknown event is a 404, not a gate of nothing
    await rt.flash.reconcile(event_id)
    return RedirectResponse(_path(event_id) + "?reconciled=1", status_code=303)
