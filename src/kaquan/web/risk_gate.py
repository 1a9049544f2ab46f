"""Where the order paths meet the decision point: what each request tells risk, and its answer enforced.

A declined request gets 403 `risk_declined`, a challenged one (and, until a review queue exists, one
for review) 403 `challenge_required` with a proof-of-work challenge in `details.challenge`; either way
nothing is placed. The client sends the request again with the solution, in the `X-Risk-Solution`
header (the shop's form: the `risk_solution` field, filled by /static/risk.js), and it goes through once.
The page's own time from load to submit comes in `X-Page-Ms` (the form's `page_ms` field).
"""

from fastapi import Request

from kaquan.orders import service as orders
from kaquan.risk import RiskContext
from kaquan.runtime import Runtime
from kaquan.web.security import client_ip

SOLUTION_HEADER = "X-Risk-Solution"
PAGE_MS_HEADER = "X-Page-Ms"
MAX_PAGE_MS = 86_400_000


def page_ms(value: str | None) -> int | None:
    """The page's time from load to submit, if it sent a plausible one (anything else is ignored)."""
    if value is None or not value.isdigit() or len(value) > 9:
        return None
    number = int(value)
    return number if number <= MAX_PAGE_MS else None


async def screen_shop_order(
    request: Request,
    rt: Runtime,
    order: orders.OrderRequest,
    *,
    device_new: bool,
    solution: str | None,
    submit_ms: int | None,
) -> None:
    """Decide on a shop order before anything is placed; raise the refusal the client needs."""
    if not rt.settings.risk_enabled:
        return
    async with rt.db.read() as session:
        unpaid_orders, unpaid_units = await orders.unpaid_held(session, rt.order_keys, order)
    decision = await rt.risk.decide(
        RiskContext(
            "shop.order",
            ip=client_ip(request),
            device=order.client_token,
            device_new=device_new,
            contact=order.contact or None,
            account=order.buyer_contact,
            sku=str(order.sku),
            quantity=order.quantity,
            unpaid_orders=unpaid_orders,
            unpaid_units=unpaid_units,
            submit_ms=submit_ms,
            solution=solution or None,
        )
    )
    decision.enforce()


async def screen_flash_purchase(
    request: Request,
    rt: Runtime,
    event_id: int,
    *,
    buyer: str,
    quantity: int,
    device: str,
    device_new: bool,
    verified: str | None,
) -> None:
    """Decide on a flash-sale purchase the gate has admitted: one counting round trip, nothing else.

    The event stands for the SKU (`sku.orders_*` count the event's purchases), and it is high demand.
    """
    decision = await rt.risk.decide(
        RiskContext(
            "flash.purchase",
            ip=client_ip(request),
            device=device,
            device_new=device_new,
            contact=verified or buyer,
            account=verified,
            sku=f"flash-event:{event_id}",
            quantity=quantity,
            high_demand=True,
            submit_ms=page_ms(request.headers.get(PAGE_MS_HEADER)),
            solution=request.headers.get(SOLUTION_HEADER),
        )
    )
    decision.enforce()
