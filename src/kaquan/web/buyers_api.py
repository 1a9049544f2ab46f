"""Buyer contact verification: a one-time code to an e-mail address or phone, then a signed buyer token.

`POST /api/buyers/verify/start {contact}` answers 202 with the normalized contact, the channel and
when the code expires (10 minutes); 429 `rate_limited` with Retry-After for a resend within a minute,
a sixth code for a contact within an hour or too many codes from one address; 400 `invalid_contact`;
422 `contact_channel_unavailable` when the shop cannot send to that kind of contact.
`POST /api/buyers/verify/confirm {contact, code}` answers 200 with the buyer token (also set as the
HttpOnly `kq_buyer` cookie); 400 `code_wrong` (with `attempts_left`) or `code_expired`; 429
`too_many_attempts` after five wrong codes (ask for a new one).

The cookie is the buyer's session on the shop's pages too (docs/buyers.md): HttpOnly, SameSite=Strict,
Secure when the shop is reached over TLS, for the whole site; signing out deletes it.
"""

from fastapi import APIRouter, Request, Response

from kaquan.buyers.schemas import BuyerTokenOut, VerifyConfirm, VerifyStart, VerifyStarted
from kaquan.runtime import Runtime
from kaquan.web.deps import RuntimeDep, client_ip
from kaquan.web.risk_gate import SIGN_IN_FAILURES, sign_in_context
from kaquan.web.security import secure_cookie

router = APIRouter(prefix="/api/buyers", tags=["buyers"])
BUYER_COOKIE = "kq_buyer"


def buyer_token(request: Request) -> str | None:
    """The buyer token a request carries: `Authorization: Bearer kqb1…`, else the `kq_buyer` cookie."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip().startswith("kqb1."):
        return value.strip()
    return request.cookies.get(BUYER_COOKIE)


def signed_in(request: Request, rt: Runtime) -> str | None:
    """The verified contact of the buyer signed in on this request (its token or cookie), or None."""
    return rt.buyers.verified_contact(buyer_token(request))


def set_buyer_cookie(response: Response, request: Request, rt: Runtime, token: str) -> None:
    response.set_cookie(
        BUYER_COOKIE,
        token,
        max_age=rt.settings.buyer_token_hours * 3600,
        path="/",
        secure=secure_cookie(request),
        httponly=True,
        samesite="strict",  # a cross-site request must never buy or read on a buyer's behalf
    )


def clear_buyer_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(BUYER_COOKIE, path="/", secure=secure_cookie(request), httponly=True, samesite="strict")


@router.post("/verify/start", status_code=202)
async def start(request: Request, rt: RuntimeDep, body: VerifyStart) -> VerifyStarted:
    """Send a one-time code (sign-in and sign-up alike), once risk control lets the request through: 403
    `risk_declined`, or 403 `challenge_required` (send the solution in `X-Risk-Solution`)."""
    (await rt.risk.decide(sign_in_context(request, contact=body.contact))).enforce()
    async with rt.db.transaction() as session:
        started = await rt.buyers.start(rt.db, session, body.contact, ip=client_ip(request))
    return VerifyStarted(
        contact=started.contact,
        channel=started.channel,
        expires_at=started.expires_at,
        resend_after_s=started.resend_after_s,
    )


@router.post("/verify/confirm")
async def confirm(request: Request, response: Response, rt: RuntimeDep, body: VerifyConfirm) -> BuyerTokenOut:
    try:
        issued = await rt.buyers.confirm(rt.db, body.contact, body.code)
    except SIGN_IN_FAILURES:
        await rt.risk.failed(sign_in_context(request, contact=body.contact))
        raise
    set_buyer_cookie(response, request, rt, issued.token)
    return BuyerTokenOut(contact=issued.contact, token=issued.token, expires_at=issued.expires_at)
