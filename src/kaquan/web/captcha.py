"""The image captcha, for buyers whose browser runs no JavaScript (docs/risk.md).

When the buy form is challenged and the browser posted it as a plain form (no JavaScript: risk.js
would have posted it by fetch and solved the proof-of-work), the answer is this page instead of an
error: the same form again, hidden, with a captcha to read. Its image is drawn by kaquan
(`GET /risk/captcha.png`), never by a third party. The typed answer goes with the form as
`captcha_token` + `captcha_answer`, and a right one lets the order through once.
"""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from kaquan.kit.errors import NotFound
from kaquan.kit.ratelimit import enforce
from kaquan.risk import ChallengeRequired
from kaquan.risk.captcha import MAX_TOKEN
from kaquan.runtime import Runtime
from kaquan.web.deps import RuntimeDep, client_ip
from kaquan.web.errors import wants_html
from kaquan.web.i18n import translator
from kaquan.web.pages import render
from kaquan.web.shop_words import chosen_language

router = APIRouter()
PICTURES_PER_MINUTE = 30
FAILED = {
    "captcha_wrong": "captcha.wrong",
    "challenge_expired": "captcha.expired",
    "challenge_replayed": "captcha.used",
}


class CaptchaGone(NotFound):
    code = "captcha_not_found"

    def __init__(self) -> None:
        super().__init__("no such captcha, or it expired")


@router.get("/risk/captcha.png", include_in_schema=False)
async def captcha_image(
    request: Request, rt: RuntimeDep, token: Annotated[str, Query(max_length=MAX_TOKEN)]
) -> Response:
    """Drawing a picture costs a few milliseconds: an address may ask for `PICTURES_PER_MINUTE` a minute."""
    await enforce(
        rt.limiter, f"captcha:{client_ip(request)}", limit=PICTURES_PER_MINUTE, window_s=60, what="captcha pictures"
    )
    picture = rt.risk.captchas.image(token)
    if picture is None:
        raise CaptchaGone()
    return Response(picture, media_type="image/png", headers={"Cache-Control": "no-store"})


def wants_captcha(request: Request, refusal: ChallengeRequired) -> bool:
    """A challenged plain form post from a browser: it gets the captcha page, not the error."""
    return wants_html(request) and refusal.code == "challenge_required"


def captcha_page(
    request: Request, rt: Runtime, refusal: ChallengeRequired, *, action: str, fields: dict[str, str]
) -> Response:
    """The challenged form again, with a fresh captcha and why the last answer failed, if one did."""
    failed = refusal.details.get("previous_solution")
    issued = rt.risk.captchas.issue(action)
    return render(
        request,
        "captcha.html",
        {
            "t": translator(chosen_language(request)[0]),
            "token": issued.token,
            "fields": fields,
            "failed": FAILED.get(str(failed), "captcha.invalid") if failed else None,
        },
        status=403,
        headers={"Cache-Control": "no-store"},
    )
