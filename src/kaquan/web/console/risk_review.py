"""风控审核 / Risk review: orders risk held, one card each with its score, reasons and buyer's history, and
the verdicts (approve, decline, fraud) for those who hold `risk.write`. A verdict is a form post that lands
back on the queue (303) saying what it did; a second verdict on the same order is refused with the first
one's outcome (`payments.review`)."""

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response

from kaquan.identity.permissions import Permission
from kaquan.payments import review
from kaquan.web.console.rendering import console_router, page
from kaquan.web.deps import Principal, RuntimeDep, require
from kaquan.web.pages import local_time

router = console_router()

RiskRead = Annotated[Principal, require(Permission.RISK_READ)]
RiskWrite = Annotated[Principal, require(Permission.RISK_WRITE)]
QUEUE = "/admin/risk/review"
SHOWN = 50
HISTORY_SHOWN = 5


@router.get(QUEUE)
async def review_queue(request: Request, rt: RuntimeDep, admin: RiskRead, done: str = "", number: str = "") -> Response:
    async with rt.db.read() as session:
        held = await review.queue(session, limit=SHOWN)
        cases = [await review.case(session, h.order.number) for h in held]
    context = {
        "cases": cases,
        "shown": HISTORY_SHOWN,
        "when": local_time(request),
        "zone": rt.settings.timezone,
        "done": done if done in review.STATUS_OF.values() else "",
        "done_number": number[:32],
    }
    return page(request, admin, "risk_review.html", context)


@router.post(QUEUE + "/{number}")
async def give_verdict(
    rt: RuntimeDep,
    admin: RiskWrite,
    number: str,
    verdict: Annotated[review.Verdict, Form()],
    reason: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    async with rt.db.transaction() as session:
        done = await review.give_verdict(rt.db, session, number, verdict, actor=admin.actor, reason=reason)
    if done.blocked:
        rt.risk.invalidate()
    return RedirectResponse(f"{QUEUE}?done={done.verdict}&number={done.number}", status_code=303)
