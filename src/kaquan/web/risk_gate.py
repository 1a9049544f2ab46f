"""Where the order paths meet the decision point: what each request tells risk, and its answer enforced.

A declined request gets 403 `risk_declined`, a challenged one 403 `challenge_required` with a
proof-of-work challenge in `details.challenge`; either way nothing is placed. A shop order for review is
placed and held for a person's verdict (`payments.review`); elsewhere review is answered as a challenge.
The client sends the request again with the solution, in the `X-Risk-Solution` header (the shop's form:
the `risk_solution` field, filled by /static/risk.js), and it goes through once.
The page's own time from load to submit comes in `X-Page-Ms` (the form's `page_ms` field).
"""

from fastapi import Request

from kaquan import redemption
from kaquan.buyers.errors import CodeExpired, CodeWrong, TooManyAttempts
from kaquan.orders import service as orders
from kaquan.risk import Decision, RiskContext
from kaquan.runtime import Runtime
from kaquan.web.security import client_ip

SOLUTION_HEADER = "X-Risk-Solution"
CLIENT_COOKIE = "kq_client"  # the shop's first-party device token (web.shop sets it)
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
) -> Decision | None:
    """Decide on a shop order before anything is placed; raise the refusal the client needs. The decision
    returned goes to `payments.checkout`, which holds the order when it asks for a review."""
    if not rt.settings.risk_enabled:
        return None
    async with rt.db.read(single_statement=True) as session:  # a feature, not a guard: no BEGIN/COMMIT for it
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
            can_hold=True,
        )
    )
    decision.enforce()
    return decision


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


async def screen_agent_order(request: Request, rt: Runtime, agent: str, *, sku: str | None, quantity: int) -> None:
    """Decide on an agent's order request (one decision per request: a batch is one attempt of all its units,
    `sku` its SKU when all its orders ask for one). Review is answered as a challenge: an agent's order is
    paid from its balance and delivered in the same request, so there is nothing to hold."""
    decision = await rt.risk.decide(
        RiskContext(
            "agent.order",
            ip=client_ip(request),
            agent=agent,
            sku=sku,
            quantity=quantity,
            solution=request.headers.get(SOLUTION_HEADER),
        )
    )
    decision.enforce()


REDEEM_FAILURES = (*redemption.FAILURES, redemption.RedeemLockedOut)
"""What counts as a failed redemption for risk: an unknown or malformed code, or an attempt the lockout refused."""


def redemption_context(request: Request, *, account: str, device: str | None) -> RiskContext:
    return RiskContext(
        "redeem",
        ip=client_ip(request),
        device=device,
        account=account,
        solution=request.headers.get(SOLUTION_HEADER),
    )


async def screen_redemption(rt: Runtime, context: RiskContext) -> None:
    """Decide on a redemption or verification attempt; the caller reports a failed one (`RiskEngine.failed`), so
    that a code-guessing run raises `*.redeem_failures_*` for its next attempts."""
    (await rt.risk.decide(context)).enforce()


SIGN_IN_FAILURES = (CodeWrong, CodeExpired, TooManyAttempts)
"""What counts as a failed sign-in for risk: a wrong or expired one-time code, or one past its attempts."""


def sign_in_context(request: Request, *, contact: str, solution: str | None = None) -> RiskContext:
    """A buyer asking for a one-time code (sign-in and sign-up are one path), by address, device and contact."""
    return RiskContext(
        "buyer.sign_in",
        ip=client_ip(request),
        device=request.cookies.get(CLIENT_COOKIE),
        device_new=CLIENT_COOKIE not in request.cookies,
        contact=contact.strip().lower() or None,
        submit_ms=page_ms(request.headers.get(PAGE_MS_HEADER)),
        solution=solution or request.headers.get(SOLUTION_HEADER),
    )
