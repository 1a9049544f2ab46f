"""The buyer verification HTTP contract: a code to a contact, then a token in a strict HttpOnly cookie and the body."""

import httpx
from sqlalchemy import func, select
from tests.support.buyers import sent_code
from tests.support.http import the_error

from kaquan.buyers.models import ContactCode
from kaquan.runtime import Runtime


async def test_a_buyer_verifies_a_contact_and_gets_a_token_and_a_strict_cookie(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    rt.settings.dev_contact_codes = True

    started = await client.post("/api/buyers/verify/start", json={"contact": "Ann@Example.com"})
    _, code = await sent_code(rt)
    confirmed = await client.post("/api/buyers/verify/confirm", json={"contact": "ann@example.com", "code": code})

    assert started.status_code == 202
    assert {k: started.json()[k] for k in ("contact", "channel", "resend_after_s")} == {
        "contact": "ann@example.com",
        "channel": "dev",
        "resend_after_s": 60,
    }
    assert confirmed.status_code == 200
    assert confirmed.json()["contact"] == "ann@example.com"
    assert rt.buyers.verified_contact(confirmed.json()["token"]) == "ann@example.com"
    cookie = confirmed.headers["set-cookie"].lower()
    assert cookie.startswith("kq_buyer=") and "httponly" in cookie and "samesite=strict" in cookie


async def test_bad_verification_requests_are_4xx_and_change_nothing(rt: Runtime, client: httpx.AsyncClient) -> None:
    start, confirm = "/api/buyers/verify/start", "/api/buyers/verify/confirm"

    the_error(await client.post(start, json={"contact": "ann@example.com"}), 422, "contact_channel_unavailable")
    rt.settings.dev_contact_codes = True
    the_error(await client.post(start, json={"contact": "nobody"}), 400, "invalid_contact")
    the_error(await client.post(start, json={"contact": "a@b.co", "extra": 1}), 422, "validation_error")
    the_error(await client.post(confirm, json={"contact": "a@b.co", "code": "123456"}), 400, "code_expired")
    assert (await client.post(start, json={"contact": "a@b.co"})).status_code == 202
    throttled = await client.post(start, json={"contact": "A@B.co"})
    details = the_error(throttled, 429, "rate_limited")
    assert throttled.headers["Retry-After"] == str(details["retry_after"])
    async with rt.db.read() as session:
        assert (await session.execute(select(func.count()).select_from(ContactCode))).scalar_one() == 1
