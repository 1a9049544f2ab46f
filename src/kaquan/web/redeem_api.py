"""Redemption (核销) of merchant-issued vouchers: redeem once, or verify without redeeming.

Both endpoints need the `redeem` permission and share one failed-attempt lockout
per IP, user and device (`redemption.Lockout`): a user's many tokens share one count. Prefer
`POST /redemptions/verify`: a code in a query string ends up in access logs and
browser history, and a voucher code is as good as cash.

Every attempt is decided by risk control first (`web.risk_gate`, action `redeem`): 403 `risk_declined`, or
403 `challenge_required` (send the solution in `X-Risk-Solution`). A failed attempt (an unknown or malformed
code) is counted for risk too, so rules can read `account.redeem_failures_1h` and the like.
"""

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from kaquan import redemption as redeeming
from kaquan.identity.permissions import Permission
from kaquan.runtime import Runtime
from kaquan.web.content import JSON_ONLY
from kaquan.web.deps import Principal, RuntimeDep, require
from kaquan.web.risk_gate import REDEEM_FAILURES, redemption_context, screen_redemption

router = APIRouter(prefix="/admin/api", tags=["admin"], dependencies=JSON_ONLY)
Redeemer = Annotated[Principal, require(Permission.REDEEM)]
# Generous on purpose: the service decides what a code may look like (and counts malformed guesses).
_CODE_FIELD = Field(max_length=256, description="the voucher code as printed or scanned; dashes and spaces ignored")


class RedeemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = _CODE_FIELD
    nonce: str = Field(
        min_length=8, max_length=64, description="chosen by the client per scan; re-sending it is harmless"
    )
    device_id: str = Field(min_length=1, max_length=64)
    location: str = Field(min_length=1, max_length=200)
    redeemed_offline_at: AwareDatetime | None = Field(
        default=None, description="set by a device that redeemed while offline: when it happened there"
    )


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = _CODE_FIELD
    device_id: str | None = Field(default=None, min_length=1, max_length=64)


class RedemptionOut(BaseModel):
    redemption_id: int
    code_id: int
    code_hint: str
    sku_id: int
    order_id: int | None
    redeemed_at: datetime
    redeemed_by: str
    device_id: str
    location: str
    offline: bool
    redeemed_offline_at: datetime | None

    @classmethod
    def of(cls, done: redeeming.Redeemed) -> "RedemptionOut":
        return cls(**done.__dict__)


class VoucherStateOut(BaseModel):
    state: redeeming.VoucherStateName
    redeemable: bool
    code_id: int
    code_hint: str
    sku_id: int
    order_id: int | None
    expires_on: date | None
    redemption: RedemptionOut | None

    @classmethod
    def of(cls, found: redeeming.VoucherState) -> "VoucherStateOut":
        return cls(
            state=found.state,
            redeemable=found.state == "redeemable",
            code_id=found.code_id,
            code_hint=found.code_hint,
            sku_id=found.sku_id,
            order_id=found.order_id,
            expires_on=found.expires_on,
            redemption=RedemptionOut.of(found.redemption) if found.redemption else None,
        )


def _lockout(rt: Runtime) -> redeeming.Lockout:
    return redeeming.Lockout(rt.limiter)


@router.post("/redemptions")
async def redeem(http: Request, rt: RuntimeDep, admin: Redeemer, body: RedeemIn) -> RedemptionOut:
    """Redeem a sold voucher once. The same nonce again returns the same result; any other retry is a 409."""
    request = redeeming.RedeemRequest(
        code=body.code,
        nonce=body.nonce,
        device_id=body.device_id,
        location=body.location,
        redeemed_offline_at=body.redeemed_offline_at,
    )
    context = redemption_context(http, account=admin.account, device=body.device_id)
    await screen_redemption(rt, context)
    try:
        done = await redeeming.attempt_redemption(
            rt.db, rt.vault, _lockout(rt), request, actor=admin.actor, account=admin.account, ip=admin.ip
        )
    except REDEEM_FAILURES:
        await rt.risk.failed(context)
        raise
    return RedemptionOut.of(done)


@router.post("/redemptions/verify")
async def verify(http: Request, rt: RuntimeDep, admin: Redeemer, body: VerifyIn) -> VoucherStateOut:
    """Say whether a voucher is redeemable, redeemed (when, where), not sold, voided or expired; redeem nothing."""
    context = redemption_context(http, account=admin.account, device=body.device_id)
    await screen_redemption(rt, context)
    try:
        found = await redeeming.attempt_verification(
            rt.db, rt.vault, _lockout(rt), body.code, account=admin.account, ip=admin.ip, device_id=body.device_id
        )
    except REDEEM_FAILURES:
        await rt.risk.failed(context)
        raise
    return VoucherStateOut.of(found)
