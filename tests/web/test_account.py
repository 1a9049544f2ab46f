"""Buyer accounts on the shop: sign in by a one-time e-mail code, see the orders placed signed in, sign out.

The code travels by a real SMTP server (aiosmtpd); the client is a browser-like
HTTP client holding the cookies. Guest checkout stays: a guest order is never in
anyone's history, and the sign-in answer says nothing about who has orders.
"""

import re
import secrets
from collections.abc import Iterator

import httpx
import pytest
from tests.support.accounts import ask_for_code, enter_code, form_token, mailed_code, sign_in
from tests.support.builders import given_sku_with_codes
from tests.support.http import BROWSER, Caller, some_ip, the_error
from tests.support.notices import given_delivered
from tests.support.smtp import Mailbox, mailbox

from kaquan.kit import clock
from kaquan.runtime import Runtime
from kaquan.web.app import create_app


@pytest.fixture
def box(rt: Runtime) -> Iterator[Mailbox]:
    with mailbox() as running:
        running.point(rt.settings)
        yield running


def numbers_listed(page: httpx.Response) -> list[str]:
    return re.findall(r'data-number="(\d+)"', page.text)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


async def test_a_buyer_signs_in_by_email_code_and_sees_only_their_own_orders(
    rt: Runtime, client: httpx.AsyncClient, box: Mailbox
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    mine = [await given_delivered(rt, buyer_contact="ann@example.com", sku=sku) for _ in range(2)]
    theirs = await given_delivered(rt, buyer_contact="bob@example.com", sku=sku)
    guest = await given_delivered(rt, contact="ann@example.com", sku=sku)  # typed, never verified

    form = await ask_for_code(client, "Ann@Example.com ")
    assert form.status_code == 200 and 'id="code-form"' in form.text
    signed = await enter_code(client, form, "ann@example.com", await mailed_code(rt, box, "ann@example.com"))

    assert (signed.status_code, signed.headers["location"]) == (303, "/account/orders")
    cookie = signed.headers["set-cookie"].lower()
    assert cookie.startswith("kq_buyer=kqb1.") and "httponly" in cookie and "samesite=strict" in cookie
    assert "path=/;" in cookie and "secure" not in cookie  # plain http here; Secure over TLS (below)
    history = await client.get("/account/orders", headers=BROWSER)
    assert history.status_code == 200 and "已登录：ann@example.com" in history.text
    assert numbers_listed(history) == [mine[1].number, mine[0].number]
    assert theirs.number not in history.text and guest.number not in history.text
    assert "已发货" in history.text and "¥" in history.text and "UTC+8" in history.text


async def test_the_buyer_cookie_is_secure_when_the_shop_is_served_over_tls(rt: Runtime, box: Mailbox) -> None:
    transport = httpx.ASGITransport(app=create_app(rt=rt))
    async with httpx.AsyncClient(transport=transport, base_url="https://shop.test") as client:
        form = await ask_for_code(client, "ann@example.com")
        signed = await enter_code(client, form, "ann@example.com", await mailed_code(rt, box, "ann@example.com"))

    assert signed.status_code == 303 and "secure" in signed.headers["set-cookie"].lower()


async def test_a_wrong_code_says_how_many_tries_are_left_and_signs_nobody_in(
    rt: Runtime, client: httpx.AsyncClient, box: Mailbox
) -> None:
    form = await ask_for_code(client, "ann@example.com")
    code = await mailed_code(rt, box, "ann@example.com")

    refused = await enter_code(client, form, "ann@example.com", wrong(code))

    assert refused.status_code == 400 and "验证码不正确，还可以再试 4 次" in refused.text
    assert "kq_buyer" not in refused.headers.get("set-cookie", "")
    assert (await client.get("/account/orders", headers=BROWSER)).headers["location"] == "/account/sign-in"
    signed = await enter_code(client, refused, "ann@example.com", code)  # the right one still works
    assert signed.status_code == 303


async def test_an_expired_code_is_refused(rt: Runtime, client: httpx.AsyncClient, box: Mailbox) -> None:
    form = await ask_for_code(client, "ann@example.com")
    code = await mailed_code(rt, box, "ann@example.com")
    clock.travel(10 * 60 + 1)

    refused = await enter_code(client, form, "ann@example.com", code)

    assert refused.status_code == 400 and "验证码已过期或已使用" in refused.text
    assert 'id="contact-form"' in refused.text  # back to asking for a new code


async def test_five_wrong_codes_use_the_code_up(rt: Runtime, client: httpx.AsyncClient, box: Mailbox) -> None:
    form = await ask_for_code(client, "ann@example.com")
    code = await mailed_code(rt, box, "ann@example.com")
    answers = [await enter_code(client, form, "ann@example.com", wrong(code)) for _ in range(5)]

    last = await enter_code(client, form, "ann@example.com", code)

    assert [a.status_code for a in answers] == [400, 400, 400, 400, 429]
    assert last.status_code == 429 and "错误次数过多" in last.text


async def test_the_sign_in_answer_is_the_same_whether_or_not_the_address_has_orders(
    rt: Runtime, client: httpx.AsyncClient, box: Mailbox
) -> None:
    await given_delivered(rt, buyer_contact="ann@example.com")

    known = await ask_for_code(client, "ann@example.com")
    unknown = await ask_for_code(client, "zoe@example.com")

    assert known.status_code == unknown.status_code == 200

    def anonymous(page: httpx.Response) -> str:
        return page.text.replace(form_token(page), "").replace("ann@", "x@").replace("zoe@", "x@")

    assert anonymous(known) == anonymous(unknown)


async def test_codes_asked_for_too_often_are_throttled(rt: Runtime, client: httpx.AsyncClient, box: Mailbox) -> None:
    assert (await ask_for_code(client, "ann@example.com")).status_code == 200

    again = await ask_for_code(client, "ann@example.com")

    assert again.status_code == 429 and "请求过于频繁" in again.text


async def test_a_sign_in_form_from_another_site_is_refused(
    rt: Runtime, client: httpx.AsyncClient, box: Mailbox
) -> None:
    """No form token (a cross-site form cannot read or send the SameSite=Strict cookie): nothing is sent."""
    forged = await client.post("/account/sign-in", data={"contact": "ann@example.com", "form_token": "x" * 43})

    assert forged.status_code == 403 and "页面已过期" in forged.text
    assert box.received == []


async def test_the_pages_speak_english_when_asked(rt: Runtime, client: httpx.AsyncClient, box: Mailbox) -> None:
    client.cookies.set("lang", "en")

    page = await client.get("/account/sign-in", headers=BROWSER)

    assert "Sign in to see your orders" in page.text and "发送验证码" not in page.text


async def test_a_signed_in_buyer_opens_their_order_page_in_any_browser_and_nobody_elses(
    rt: Runtime, client: httpx.AsyncClient, box: Mailbox
) -> None:
    mine = await given_delivered(rt, buyer_contact="ann@example.com")
    theirs = await given_delivered(rt, buyer_contact="bob@example.com")
    await sign_in(rt, client, box, "ann@example.com")

    opened = await client.get(f"/orders/{mine.number}", headers=BROWSER)
    other = await client.get(f"/orders/{theirs.number}", headers=BROWSER)

    assert opened.status_code == 200 and all(code in opened.text for code in mine.codes)
    assert (other.status_code, other.headers["location"]) == (303, f"/lookup?number={theirs.number}")


async def test_signing_out_ends_the_session_on_the_pages(rt: Runtime, client: httpx.AsyncClient, box: Mailbox) -> None:
    await sign_in(rt, client, box, "ann@example.com")
    history = await client.get("/account/orders", headers=BROWSER)

    out = await client.post("/account/sign-out", data={"form_token": form_token(history)}, headers=BROWSER)

    assert out.status_code == 303 and 'kq_buyer=""' in out.headers["set-cookie"]
    assert (await client.get("/account/orders", headers=BROWSER)).headers["location"] == "/account/sign-in"


# The JSON API --------------------------------------------------------------------------------------------


async def test_the_api_lists_the_buyers_orders_page_by_page(
    rt: Runtime, client: httpx.AsyncClient, box: Mailbox
) -> None:
    sku = await given_sku_with_codes(rt, 10)
    mine = [await given_delivered(rt, buyer_contact="ann@example.com", sku=sku) for _ in range(3)]
    await given_delivered(rt, buyer_contact="bob@example.com", sku=sku)
    await sign_in(rt, client, box, "ann@example.com")
    token = client.cookies["kq_buyer"]
    client.cookies.clear()  # the bearer alone proves it
    bearer = {"Authorization": f"Bearer {token}"}

    me = await client.get("/api/buyer/me", headers=bearer)
    first = await client.get("/api/buyer/orders", params={"limit": 2}, headers=bearer)
    rest = await client.get(
        "/api/buyer/orders", params={"limit": 2, "before_id": first.json()["next_before_id"]}, headers=bearer
    )

    assert me.json() == {"contact": "ann@example.com"}
    assert [o["number"] for o in first.json()["orders"]] == [mine[2].number, mine[1].number]
    assert [o["number"] for o in rest.json()["orders"]] == [mine[0].number]
    assert rest.json()["next_before_id"] is None
    order = first.json()["orders"][0]
    assert order["status"] == "delivered" and order["sku"] == sku.code and order["currency"] == "CNY"
    assert order["url"] == f"{rt.settings.public_url}/orders/{mine[2].number}"
    assert not any(code in first.text for code in mine[2].codes)


@pytest.mark.parametrize("token", [None, "kqb1.forged.tag", "not-a-token"])
async def test_the_api_without_a_live_buyer_token_is_401(
    rt: Runtime, client: httpx.AsyncClient, token: str | None
) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    for path in ("/api/buyer/me", "/api/buyer/orders"):
        the_error(await client.get(path, headers=headers), 401, "buyer_sign_in_required")


async def test_the_api_refuses_bad_paging(rt: Runtime, client: httpx.AsyncClient, box: Mailbox) -> None:
    await sign_in(rt, client, box, "ann@example.com")

    for params in ({"limit": 0}, {"limit": 51}, {"before_id": -1}, {"limit": "x"}):
        assert (await client.get("/api/buyer/orders", params=params)).status_code == 422


async def test_an_order_placed_signed_in_records_the_contact_and_the_language(
    rt: Runtime, client: httpx.AsyncClient, box: Mailbox
) -> None:
    sku = await given_sku_with_codes(rt, 5)
    await sign_in(rt, client, box, "ann@example.com")
    client.cookies.set("lang", "en")

    placed = await client.post(
        "/api/orders",
        json={"sku": sku.code, "quantity": 1, "contact": "someone-else@example.com"},
        headers={"Idempotency-Key": "k-1", "X-Client-Token": secrets.token_urlsafe(24)},
    )
    guest = await client.post(  # no buyer cookie: a guest order
        "/api/orders",
        json={"sku": sku.code, "quantity": 1, "contact": "ann@example.com"},
        headers={"Idempotency-Key": "k-2", "X-Client-Token": secrets.token_urlsafe(24), "Cookie": "lang=zh"},
    )

    assert placed.status_code == guest.status_code == 201
    listed = (await client.get("/api/buyer/orders")).json()["orders"]
    assert [o["number"] for o in listed] == [placed.json()["number"]]
    from kaquan.orders import service as orders

    async with rt.db.read() as session:
        order = await orders.by_number(session, placed.json()["number"])
    assert (order.contact, order.buyer_contact, order.lang) == ("ann@example.com", "ann@example.com", "en")


async def test_the_signed_in_contact_is_what_the_per_buyer_hold_limit_counts(
    rt: Runtime, client: httpx.AsyncClient, caller_at: Caller, box: Mailbox
) -> None:
    """Three unpaid orders per contact: signed in, a buyer cannot dodge it by changing address, device or
    the contact typed in the form; a guest doing the same (no contact) is not counted as one buyer."""
    sku = await given_sku_with_codes(rt, 20)
    await sign_in(rt, client, box, "ann@example.com")
    token = client.cookies["kq_buyer"]

    async def attempt(signed_in: bool) -> str:
        async with caller_at(some_ip()) as anywhere:
            answer = await anywhere.post(
                "/api/orders",
                json={"sku": sku.code, "quantity": 1, "contact": f"alias-{secrets.token_hex(3)}@example.com"},
                headers={
                    "Idempotency-Key": secrets.token_hex(8),
                    "X-Client-Token": secrets.token_urlsafe(24),
                    **({"Authorization": f"Bearer {token}"} if signed_in else {}),
                },
            )
        return answer.json()["error"]["code"] if answer.is_error else str(answer.status_code)

    assert [await attempt(signed_in=True) for _ in range(4)] == ["201"] * 3 + ["too_many_unpaid_orders"]
    assert [await attempt(signed_in=False) for _ in range(4)] == ["201"] * 4
