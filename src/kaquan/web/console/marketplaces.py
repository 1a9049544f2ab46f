"""Marketplace stores in the console: the stores, adding one (its push secret shown once), and whole-order refunds.

A marketplace refund reverses the store's receivable at once (`channels.aftersale`, the route every channel's
refund takes), so only a person who may approve refunds asks for one. The refunds list is read from the audit
trail, where the service records each one. Order files are `marketplace_files`.
"""

import re
from typing import Annotated, Any

from fastapi import Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from kaquan.audit import service as audit
from kaquan.channels import aftersale, marketplace
from kaquan.identity.permissions import Permission
from kaquan.kit.errors import BadInput
from kaquan.kit.money import display
from kaquan.kit.tables import Format, Table
from kaquan.orders import service as orders
from kaquan.web.console.access import ChannelsRead
from kaquan.web.console.rendering import console_router, page
from kaquan.web.deps import Principal, RuntimeDep, require
from kaquan.web.downloads import PAGE_OR_DOWNLOAD, table_download
from kaquan.web.i18n import Translate, language, translator
from kaquan.web.pages import local_time

router = console_router()

ChannelsWrite = Annotated[Principal, require(Permission.CHANNELS_WRITE)]
RefundsApprove = Annotated[Principal, require(Permission.REFUNDS_APPROVE)]
PAGE = "/admin/marketplaces"
REFUNDED = "marketplace_order.refunded"
REFUNDS_SHOWN = 100
_PERCENT = re.compile(r"(\d{1,3})(?:\.(\d{1,2}))?")


def fee_bp(text: str) -> int:
    """A fee typed as a percentage (`2.5`, `2.5%`) in basis points; 0 to 100 %, at most two decimals."""
    found = _PERCENT.fullmatch(text.strip().rstrip("%").strip() or "0")
    if found is None or int(found.group(1)) * 100 + int((found.group(2) or "").ljust(2, "0")) > 10_000:
        raise BadInput("the fee is a percentage from 0 to 100 with at most two decimals, such as 2.5", field="fee")
    return int(found.group(1)) * 100 + int((found.group(2) or "").ljust(2, "0"))


def percent(bp: int) -> str:
    return f"{bp / 100:.2f}%"


async def _context(rt: RuntimeDep) -> dict[str, Any]:
    async with rt.db.read() as session:
        stores = await marketplace.list_stores(session)
        refunds = await audit.search(session, audit.AuditFilter(action=REFUNDED), limit=REFUNDS_SHOWN)
    return {"stores": stores, "refunds": refunds}


def store_of(channel_code: str) -> str:
    return channel_code.removeprefix(marketplace.CHANNEL_PREFIX)


def _table(name: str, context: dict[str, Any], t: Translate, when: Any) -> Table:
    if name == "stores":
        rows: list[list[Any]] = [
            [store_of(c.code), c.name, percent(c.fee_rate_bp), t("mp.active") if c.active else t("mp.inactive")]
            for c in context["stores"]
        ]
        return Table(t("mp.stores"), [t("mp.store"), t("mp.name"), t("mp.fee"), t("mp.state")], rows)
    header = ["mp.at", "mp.order", "mp.store", "mp.marketplace_order", "mp.amount", "mp.reason", "mp.by"]
    rows = [
        [
            when(entry.at),
            entry.target.removeprefix("order:"),
            (entry.after or {}).get("store", ""),
            (entry.after or {}).get("marketplace_order_id", ""),
            display(int((entry.after or {}).get("amount_minor", 0)), (entry.after or {}).get("currency", "CNY")),
            (entry.after or {}).get("reason", ""),
            entry.actor,
        ]
        for entry in context["refunds"]
    ]
    return Table(t("mp.refunds"), [t(key) for key in header], rows)


@router.get("/admin/marketplaces", responses=PAGE_OR_DOWNLOAD)
async def marketplaces_page(
    request: Request,
    rt: RuntimeDep,
    admin: ChannelsRead,
    fmt: Annotated[Format | None, Query(alias="format")] = None,
    list_name: Annotated[str, Query(alias="list", pattern="^(stores|refunds)$")] = "stores",
    refunded: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    """Stores, the order-file import form and marketplace refunds; `?format=csv&list=refunds` downloads a list."""
    context = await _context(rt)
    when = local_time(request)
    if fmt is not None:
        table = _table(list_name, context, translator(language(request)), when)
        return table_download(table, fmt, f"marketplace-{list_name}")
    context |= {"when": when, "percent": percent, "store_of": store_of, "refunded": refunded}
    return page(request, admin, "marketplaces.html", context)


@router.post("/admin/marketplaces")
async def add_store(
    request: Request,
    rt: RuntimeDep,
    admin: ChannelsWrite,
    store: Annotated[str, Form(max_length=40)],
    name: Annotated[str, Form(max_length=200)],
    fee: Annotated[str, Form(max_length=12)] = "0",
) -> Response:
    """Add a store; its push secret is on the answer page, this once (no-store), and again only by an audited reveal."""
    code = store.strip()
    async with rt.db.transaction() as session:
        secret = await marketplace.add_store(
            rt.db, session, rt.keyring, code, name=name.strip(), fee_rate_bp=fee_bp(fee), actor=admin.actor
        )
    context = await _context(rt)
    context |= {
        "when": local_time(request),
        "percent": percent,
        "store_of": store_of,
        "refunded": None,
        "added": {"store": code, "secret": secret},
    }
    return page(request, admin, "marketplaces.html", context, status=201)


@router.post("/admin/marketplaces/refunds")
async def refund(
    rt: RuntimeDep,
    admin: RefundsApprove,
    store: Annotated[str, Form(max_length=40)],
    marketplace_order_id: Annotated[str, Form(max_length=80)],
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Refund a delivered marketplace order in full, found by its store and the marketplace's order id."""
    wanted = marketplace_order_id.strip()
    async with rt.db.transaction() as session:
        channel = await marketplace.get_store(session, store.strip())
        code = store_of(channel.code)
        order = await orders.by_key(session, channel=channel.code, source=code, key=wanted)
        if order is None:
            raise BadInput(f"store {code} has no order {wanted!r}", field="marketplace_order_id")
        await aftersale.request_refund(
            rt.db,
            session,
            order.number,
            amount_minor=None,
            reason=reason,
            actor=admin.actor,
            may_approve=True,
            four_eyes=rt.settings.refund_four_eyes,
        )
    return RedirectResponse(f"{PAGE}?refunded={order.number}", status_code=303)
