"""The challenged buy form without JavaScript gets the captcha page (not an error), its picture is served
for live tokens only, and a client that asks for JSON still gets `challenge_required` with its proof-of-work."""

import re
import secrets

import httpx
from sqlalchemy import func, select
from tests.support.builders import given_sku_with_codes
from tests.support.http import BROWSER

from kaquan.orders.models import Order
from kaquan.risk import rules
from kaquan.runtime import Runtime


async def challenge_every_shop_order(rt: Runtime) -> None:
    async with rt.db.transaction() as session:
        await rules.add(
            session, name="check", expression="request.action == 'shop.order'", outcome="challenge",
            enabled=True, actor="test",
        )  # fmt: skip
    rt.risk.invalidate()


async def orders_placed(rt: Runtime) -> int:
    async with rt.db.read() as session:
        return (await session.execute(select(func.count()).select_from(Order))).scalar_one()


async def test_a_plain_form_post_gets_the_captcha_page_and_a_script_gets_the_json_challenge(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku = await given_sku_with_codes(rt, 3)
    await challenge_every_shop_order(rt)
    form = {"sku": sku.code, "quantity": "1", "idempotency_key": secrets.token_hex(8), "contact": "a@example.com"}

    page = await client.post("/orders", data=form, headers=BROWSER)
    assert page.status_code == 403 and page.headers["cache-control"] == "no-store"
    token = re.search(r'name="captcha_token" value="([^"]+)"', page.text)
    assert token is not None and f'name="idempotency_key" value="{form["idempotency_key"]}"' in page.text
    picture = await client.get("/risk/captcha.png", params={"token": token.group(1)})
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"

    forged = await client.get("/risk/captcha.png", params={"token": token.group(1)[:-3] + "abc"})
    assert forged.status_code == 404 and forged.json()["error"]["code"] == "captcha_not_found"
    too_long = await client.get("/risk/captcha.png", params={"token": "c1:" + "x" * 400})
    assert too_long.status_code == 422

    scripted = await client.post("/orders", data=form, headers={"Accept": "application/json"})
    assert scripted.status_code == 403 and scripted.json()["error"]["code"] == "challenge_required"
    assert scripted.json()["error"]["details"]["challenge"]["kind"] == "pow"

    answer = rt.risk.captchas.answer_for_tests(token.group(1))
    placed = await client.post("/orders", data=form | {"captcha_token": token.group(1), "captcha_answer": answer})
    assert placed.status_code == 303
    assert await orders_placed(rt) == 1


async def test_an_address_gets_a_bounded_number_of_pictures_a_minute(rt: Runtime, client: httpx.AsyncClient) -> None:
    token = rt.risk.captchas.issue("shop.order").token
    answers = [(await client.get("/risk/captcha.png", params={"token": token})).status_code for _ in range(31)]
    assert answers == [200] * 30 + [429]
