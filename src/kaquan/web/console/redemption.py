"""Verifying and redeeming a code at the counter."""

import uuid
from typing import Annotated, Any, Literal

from fastapi import Form, Request
from fastapi.responses import Response

from kaquan import redemption as redeeming
from kaquan.web.console.access import Redeemer
from kaquan.web.console.rendering import console_router, page
from kaquan.web.deps import Principal, RuntimeDep
from kaquan.web.pages import local_time
from kaquan.web.risk_gate import REDEEM_FAILURES, redemption_context, screen_redemption

CONSOLE_DEVICE = "console"

router = console_router()


def _redeem_form(request: Request, admin: Principal, **outcome: Any) -> Response:
    return page(request, admin, "redeem.html", {"nonce": uuid.uuid4().hex, "when": local_time(request), **outcome})


@router.get("/admin/redeem")
async def redeem_form(request: Request, admin: Redeemer) -> Response:
    return _redeem_form(request, admin)


@router.post("/admin/redeem")
async def redeem(
    request: Request,
    rt: RuntimeDep,
    admin: Redeemer,
    code: Annotated[str, Form(max_length=256)],
    action: Annotated[Literal["verify", "redeem"], Form()] = "verify",
    location: Annotated[str, Form(max_length=200)] = "console",
    nonce: Annotated[str, Form(min_length=8, max_length=64)] = "",
) -> Response:
    """A code travels only in a POST body: in a URL it would reach access logs and browser history."""
    lockout = redeeming.Lockout(rt.limiter)
    device = f"{CONSOLE_DEVICE}:{admin.user.user_id}"
    context = redemption_context(request, account=admin.account, device=device)
    await screen_redemption(rt, context)  # a refusal is shown as a console page
    try:
        if action == "redeem":
            request_ = redeeming.RedeemRequest(
                code=code, nonce=nonce or uuid.uuid4().hex, device_id=device, location=location.strip() or "console"
            )
            done = await redeeming.attempt_redemption(
                rt.db, rt.vault, lockout, request_, actor=admin.actor, account=admin.account, ip=admin.ip
            )
            return _redeem_form(request, admin, redeemed=done)
        found = await redeeming.attempt_verification(
            rt.db, rt.vault, lockout, code, account=admin.account, ip=admin.ip, device_id=device
        )
    except REDEEM_FAILURES:
        await rt.risk.failed(context)
        raise
    return _redeem_form(request, admin, state=found)
