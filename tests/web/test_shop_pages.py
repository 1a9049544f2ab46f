"""The storefront through HTTP, as a browser uses it: browse, buy, pay, see the codes, find the order."""

import html
import re
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from tests.support.builders import GivenSku, given_codes, given_sku, random_codes, stock_of
from tests.support.http import BROWSER, answer_without_request_id
from tests.support.paying import dev_pay_link

from kaquan.kit.ratelimit import RedisRateLimiter
from kaquan.orders.models import Order
from kaquan.payments.models import Payment
from kaquan.runtime import Runtime
from kaquan.web.app import create_app

Browser = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]


async def given_stocked_sku(rt: Runtime, count: int, **options: object) -> tuple[GivenSku, list[str]]:
    """A SKU holding `count` codes whose secrets the test knows."""
    sku = await given_sku(rt, **options)  # type: ignore[arg-type]
    codes = random_codes(count)
    if codes:
        await given_codes(rt, sku, codes)
    return sku, codes


def order_form(sku: GivenSku, quantity: int = 1, *, key: str | None = None) -> dict[str, str]:
    """What the index page's buy form posts."""
    return {"sku": sku.code, "quantity": str(quantity), "idempotency_key": key or secrets.token_hex(8)}


def element_text(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', page)
    assert found, f"no element #{element_id} on the page"
    return html.unescape(found.group(1)).strip()


def pay_link(page: str) -> str:
    found = re.search(r'id="pay" href="([^"]+)"', page)
    assert found, "no pay link on the page"
    return html.unescape(found.group(1))


def status_of(page: str) -> str:
    """The order page's status as a machine reads it (the words shown depend on the language)."""
    found = re.search(r'id="order-status" data-status="([a-z_]+)"', page)
    assert found, "no order status on the page"
    return found.group(1)


def shown_codes(page: str, codes: list[str]) -> list[str]:
    return [code for code in codes if code in page]


async def order_count(rt: Runtime) -> int:
    async with rt.db.read() as session:
        return (await session.execute(select(func.count()).select_from(Order))).scalar_one()


async def payment_count(rt: Runtime) -> int:
    async with rt.db.read() as session:
        return (await session.execute(select(func.count()).select_from(Payment))).scalar_one()


async def buy_on_the_shop(client: httpx.AsyncClient, sku: GivenSku, quantity: int = 1) -> tuple[str, httpx.Response]:
    """Submit the buy form and follow the redirect; returns the order number and the order page."""
    page = await client.post("/orders", data=order_form(sku, quantity), headers=BROWSER, follow_redirects=True)
    assert page.status_code == 200, page.text
    number = page.url.path.removeprefix("/orders/")
    return number, page


@pytest.fixture
def browser_at(rt: Runtime) -> Browser:
    """Another browser on the same shop, connecting from its own IP address."""

    @asynccontextmanager
    async def open_browser(ip: str) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=create_app(rt=rt), client=(ip, 50_000))
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test", headers=BROWSER) as http:
            yield http

    return open_browser


def some_ip() -> str:
    """An address of this test's own: parallel runs sharing one Redis never share a counter."""
    return f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"


# Buying ---------------------------------------------------------------------------------------------


async def test_buying_redirects_to_the_order_and_remembers_it_in_an_httponly_cookie_for_that_order_only(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku, _ = await given_stocked_sku(rt, 5)

    response = await client.post("/orders", data=order_form(sku, 2), headers=BROWSER)

    assert response.status_code == 303
    number = response.headers["location"].removeprefix("/orders/")
    assert re.fullmatch(r"\d{16}", number)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"kqo_{number}={rt.order_keys.lookup_secret(number)};")
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert "httponly" in attributes
    assert f"path=/orders/{number}" in attributes
    assert "samesite=lax" in attributes
    assert (await stock_of(rt, sku)).reserved == 2


async def test_the_order_page_shows_the_lookup_secret_and_a_pay_link(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku, codes = await given_stocked_sku(rt, 5, price_minor=1990)

    number, page = await buy_on_the_shop(client, sku, 2)

    assert element_text(page.text, "order-number") == number
    assert status_of(page.text) == "pending_payment"
    assert element_text(page.text, "lookup-secret") == rt.order_keys.lookup_secret(number)
    assert "¥39.80" in page.text
    assert re.fullmatch(r"/pay/[\w-]+", pay_link(page.text))
    assert page.headers["cache-control"] == "no-store"
    assert shown_codes(page.text, codes) == []


async def test_paying_on_the_dev_gateway_delivers_and_the_order_page_shows_the_codes(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku, codes = await given_stocked_sku(rt, 5, price_minor=1990)
    number, page = await buy_on_the_shop(client, sku, 2)

    dev_page = await dev_pay_link(client, pay_link(page.text))
    gateway_page = await client.get(dev_page, headers=BROWSER)
    assert gateway_page.status_code == 200
    assert element_text(gateway_page.text, "amount") == "¥39.80"
    assert shown_codes(gateway_page.text, codes) == []

    delivered = await client.post(dev_page, headers=BROWSER, follow_redirects=True)

    assert delivered.url.path == f"/orders/{number}"
    assert status_of(delivered.text) == "delivered"
    assert len(shown_codes(delivered.text, codes)) == 2
    assert 'id="pay"' not in delivered.text
    stock = await stock_of(rt, sku)
    assert (stock.available, stock.reserved, stock.sold) == (3, 0, 2)


async def test_paying_twice_on_the_gateway_page_is_refused_and_delivers_once(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku, _ = await given_stocked_sku(rt, 5)
    _, page = await buy_on_the_shop(client, sku)
    dev_page = await dev_pay_link(client, pay_link(page.text))
    await client.post(dev_page, headers=BROWSER)

    again = await client.post(dev_page)

    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    assert (await stock_of(rt, sku)).sold == 1


async def test_submitting_the_same_form_twice_gives_the_same_order_and_holds_stock_once(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku, _ = await given_stocked_sku(rt, 5)
    form = order_form(sku, 2)

    first = await client.post("/orders", data=form, headers=BROWSER)
    second = await client.post("/orders", data=form, headers=BROWSER)

    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    assert await order_count(rt) == 1
    assert await payment_count(rt) == 1
    assert (await stock_of(rt, sku)).reserved == 2


async def test_the_shop_gives_each_browser_a_client_token_in_an_httponly_cookie(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    first = await client.get("/", headers=BROWSER)
    again = await client.get("/", headers=BROWSER)

    cookie = first.headers["set-cookie"]
    assert cookie.startswith("kq_client=")
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "path=/", "samesite=lax"} <= attributes
    assert len(client.cookies["kq_client"]) >= 32
    assert "set-cookie" not in again.headers


async def test_another_browser_submitting_the_same_form_gets_its_own_order_and_no_cookie_of_the_first(
    rt: Runtime, browser_at: Browser
) -> None:
    sku, _ = await given_stocked_sku(rt, 5)
    form = order_form(sku, 2, key="from-a-page-a-proxy-cached")
    async with browser_at(some_ip()) as first:
        await first.get("/")
        theirs = await first.post("/orders", data=form)
    number = theirs.headers["location"].removeprefix("/orders/")

    async with browser_at(some_ip()) as second:
        await second.get("/")
        mine = await second.post("/orders", data=form)

    assert mine.status_code == 303
    assert mine.headers["location"] != theirs.headers["location"]
    assert f"kqo_{number}" not in mine.headers.get("set-cookie", "")
    assert rt.order_keys.lookup_secret(number) not in str(mine.headers) + mine.text
    assert await order_count(rt) == 2
    assert (await stock_of(rt, sku)).reserved == 4


async def test_a_browser_without_a_client_cookie_gets_one_with_its_order(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku, _ = await given_stocked_sku(rt, 5)

    response = await client.post("/orders", data=order_form(sku), headers=BROWSER)

    assert response.status_code == 303
    assert "kq_client" in client.cookies
    number = response.headers["location"].removeprefix("/orders/")
    assert client.cookies.get(f"kqo_{number}", path=f"/orders/{number}") == rt.order_keys.lookup_secret(number)


async def test_cancelling_returns_the_codes_to_stock(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku, _ = await given_stocked_sku(rt, 5)
    number, _ = await buy_on_the_shop(client, sku, 3)
    assert (await stock_of(rt, sku)).available == 2

    page = await client.post(f"/orders/{number}/cancel", headers=BROWSER, follow_redirects=True)

    assert status_of(page.text) == "cancelled"
    assert 'id="pay"' not in page.text
    stock = await stock_of(rt, sku)
    assert (stock.available, stock.reserved, stock.sold) == (5, 0, 0)
    assert stock.adds_up


async def test_a_stranger_cannot_cancel_an_order(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku, _ = await given_stocked_sku(rt, 5)
    number, _ = await buy_on_the_shop(client, sku, 3)
    client.cookies.clear()

    response = await client.post(f"/orders/{number}/cancel")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "order_not_found"
    assert (await stock_of(rt, sku)).reserved == 3


# Refused purchases: a clear answer, nothing changed ----------------------------------------------------


@pytest.mark.parametrize("quantity", [0, -1, 4], ids=["zero", "negative", "above-the-cap"])
async def test_a_quantity_outside_one_to_the_cap_is_refused_and_changes_nothing(
    rt: Runtime, client: httpx.AsyncClient, quantity: int
) -> None:
    sku, _ = await given_stocked_sku(rt, 5, max_per_order=3)
    before = await stock_of(rt, sku)

    page = await client.post("/orders", data=order_form(sku, quantity), headers=BROWSER)
    api = await client.post("/orders", data=order_form(sku, quantity))

    assert page.status_code == 400
    assert page.headers["content-type"].startswith("text/html")
    assert 'data-code="invalid_quantity"' in page.text
    assert "每单购买数量须在 1 到 3 之间" in page.text
    assert api.status_code == 400
    assert answer_without_request_id(api) == {
        "error": {
            "code": "invalid_quantity",
            "message": f"quantity must be between 1 and 3, got {quantity}",
            "details": {"quantity": quantity, "max": 3},
        }
    }
    assert await stock_of(rt, sku) == before
    assert await order_count(rt) == 0


async def test_a_quantity_that_is_not_a_number_is_a_validation_error(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku, _ = await given_stocked_sku(rt, 5)

    response = await client.post("/orders", data={**order_form(sku), "quantity": "two"})

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert await order_count(rt) == 0


async def test_an_unknown_sku_is_not_found(rt: Runtime, client: httpx.AsyncClient) -> None:
    await given_stocked_sku(rt, 5)

    page = await client.post("/orders", data=order_form(GivenSku(0, "NO-SUCH-SKU")), headers=BROWSER)
    api = await client.post("/orders", data=order_form(GivenSku(0, "NO-SUCH-SKU")))

    assert page.status_code == 404
    assert 'data-code="sku_not_found"' in page.text
    assert api.status_code == 404
    assert api.json()["error"]["code"] == "sku_not_found"
    assert await order_count(rt) == 0


async def test_buying_more_than_is_in_stock_is_a_conflict_and_creates_no_order_and_no_charge(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku, _ = await given_stocked_sku(rt, 2, max_per_order=10)

    response = await client.post("/orders", data=order_form(sku, 3))

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "out_of_stock"
    assert error["details"] == {"sku_id": sku.id, "wanted": 3, "available": 2}
    assert "set-cookie" not in response.headers
    assert await order_count(rt) == 0
    assert await payment_count(rt) == 0
    stock = await stock_of(rt, sku)
    assert (stock.available, stock.reserved) == (2, 0)


async def test_a_failed_purchase_does_not_burn_its_idempotency_key(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku, _ = await given_stocked_sku(rt, 2, max_per_order=10)
    key = secrets.token_hex(8)
    await client.post("/orders", data=order_form(sku, 3, key=key))

    retried = await client.post("/orders", data=order_form(sku, 2, key=key))

    assert retried.status_code == 303
    assert (await stock_of(rt, sku)).reserved == 2


# Finding an order again (查单) ---------------------------------------------------------------------------


async def test_an_order_page_without_its_cookie_sends_the_browser_to_the_lookup_form(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku, _ = await given_stocked_sku(rt, 5)
    number, _ = await buy_on_the_shop(client, sku)
    client.cookies.clear()

    response = await client.get(f"/orders/{number}", headers=BROWSER)
    form = await client.get(f"/orders/{number}", headers=BROWSER, follow_redirects=True)

    assert response.status_code == 303
    assert response.headers["location"] == f"/lookup?number={number}"
    assert form.url.path == "/lookup"
    assert f'name="number" value="{number}"' in form.text
    assert rt.order_keys.lookup_secret(number) not in form.text


async def test_lookup_with_the_number_and_secret_shows_the_order_and_its_codes(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku, codes = await given_stocked_sku(rt, 5)
    number, page = await buy_on_the_shop(client, sku, 2)
    secret = element_text(page.text, "lookup-secret")
    await client.post(await dev_pay_link(client, pay_link(page.text)), headers=BROWSER)
    client.cookies.clear()

    found = await client.post("/lookup", data={"number": number, "secret": secret}, headers=BROWSER)
    page = await client.get(found.headers["location"], headers=BROWSER)

    assert found.status_code == 303
    assert found.headers["location"] == f"/orders/{number}"
    assert "httponly" in found.headers["set-cookie"].lower()
    assert status_of(page.text) == "delivered"
    assert len(shown_codes(page.text, codes)) == 2


async def test_a_lookup_secret_typed_in_lower_case_without_dashes_still_finds_the_order(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku, _ = await given_stocked_sku(rt, 5)
    number, _ = await buy_on_the_shop(client, sku)
    client.cookies.clear()
    typed = rt.order_keys.lookup_secret(number).replace("-", "").lower()

    page = await client.post(
        "/lookup", data={"number": f" {number} ", "secret": typed}, headers=BROWSER, follow_redirects=True
    )

    assert page.url.path == f"/orders/{number}"
    assert status_of(page.text) == "pending_payment"


async def test_a_wrong_secret_gets_the_same_404_as_an_unknown_number(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku, codes = await given_stocked_sku(rt, 5)
    number, page = await buy_on_the_shop(client, sku, 2)
    await client.post(await dev_pay_link(client, pay_link(page.text)), headers=BROWSER)
    client.cookies.clear()
    unknown = str(int(number) + 1)
    wrong = rt.order_keys.lookup_secret(unknown)

    wrong_secret = await client.post("/lookup", data={"number": number, "secret": wrong}, headers=BROWSER)
    unknown_number = await client.post("/lookup", data={"number": unknown, "secret": wrong}, headers=BROWSER)

    for refused in (wrong_secret, unknown_number):
        assert refused.status_code == 404
        assert 'id="lookup-error"' in refused.text
        assert "set-cookie" not in refused.headers
        assert shown_codes(refused.text, codes) == []
        assert rt.order_keys.lookup_secret(number) not in refused.text
    assert wrong_secret.content.replace(number.encode(), b"<number>") == unknown_number.content.replace(
        unknown.encode(), b"<number>"
    )
    assert wrong_secret.headers["content-length"] == unknown_number.headers["content-length"]


async def test_an_order_page_with_a_forged_cookie_sends_the_browser_to_the_lookup_form(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    sku, codes = await given_stocked_sku(rt, 5)
    number, page = await buy_on_the_shop(client, sku)
    await client.post(await dev_pay_link(client, pay_link(page.text)), headers=BROWSER)
    client.cookies.clear()

    response = await client.get(f"/orders/{number}", headers={**BROWSER, "Cookie": f"kqo_{number}=AAAA-BBBB-CCCC-DDDD"})

    assert response.status_code == 303
    assert response.headers["location"] == f"/lookup?number={number}"
    assert shown_codes(response.text, codes) == []


async def test_lookups_are_throttled_per_ip_address(
    rt: Runtime, browser_at: Browser, redis_or_none: Redis | None
) -> None:
    if redis_or_none is not None:
        rt.limiter = RedisRateLimiter(redis_or_none)
    assert rt.settings.lookup_per_minute == 10
    sku, _ = await given_stocked_sku(rt, 5)
    async with browser_at(some_ip()) as buyer:
        number, _ = await buy_on_the_shop(buyer, sku)
    secret = rt.order_keys.lookup_secret(number)

    async with browser_at(some_ip()) as guesser, browser_at(some_ip()) as neighbour:
        guesses = [await guesser.post("/lookup", data={"number": number, "secret": f"WRONG-{n}"}) for n in range(10)]
        eleventh = await guesser.post("/lookup", data={"number": number, "secret": secret})
        elsewhere = await neighbour.post("/lookup", data={"number": number, "secret": secret})

    assert [g.status_code for g in guesses] == [404] * 10
    assert eleventh.status_code == 429
    assert 'data-code="rate_limited"' in eleventh.text
    assert 1 <= int(eleventh.headers["retry-after"]) <= 60
    assert "set-cookie" not in eleventh.headers
    assert elsewhere.status_code == 303


async def test_cancelling_with_wrong_secrets_is_throttled_like_a_lookup(
    rt: Runtime, browser_at: Browser, redis_or_none: Redis | None
) -> None:
    if redis_or_none is not None:
        rt.limiter = RedisRateLimiter(redis_or_none)
    sku, _ = await given_stocked_sku(rt, 5)
    async with browser_at(some_ip()) as buyer:
        number, _ = await buy_on_the_shop(buyer, sku, 2)
    secret = rt.order_keys.lookup_secret(number)

    async with browser_at(some_ip()) as guesser:
        guesses = [
            await guesser.post(f"/orders/{number}/cancel", headers={"Cookie": f"kqo_{number}=WRONG-{n}"})
            for n in range(10)
        ]
        eleventh = await guesser.post(f"/orders/{number}/cancel", headers={"Cookie": f"kqo_{number}={secret}"})

    assert [g.status_code for g in guesses] == [404] * 10
    assert eleventh.status_code == 429
    assert 1 <= int(eleventh.headers["retry-after"]) <= 60
    assert (await stock_of(rt, sku)).reserved == 2


async def test_wrong_secrets_share_one_budget_across_every_route_that_checks_them(
    rt: Runtime, browser_at: Browser, redis_or_none: Redis | None
) -> None:
    if redis_or_none is not None:
        rt.limiter = RedisRateLimiter(redis_or_none)
    sku, _ = await given_stocked_sku(rt, 5)
    async with browser_at(some_ip()) as buyer:
        number, _ = await buy_on_the_shop(buyer, sku)
    secret = rt.order_keys.lookup_secret(number)
    wrong = {"Cookie": f"kqo_{number}=AAAA-BBBB-CCCC-DDDD"}

    async with browser_at(some_ip()) as guesser:
        answers = [
            await guesser.post("/lookup", data={"number": number, "secret": "WRONG-1"}),
            await guesser.post("/api/orders/lookup", json={"number": number, "secret": "WRONG-2"}),
            await guesser.get(f"/orders/{number}", headers=wrong),
            await guesser.post(f"/orders/{number}/cancel", headers=wrong),
        ]
        for n in range(6):
            answers.append(await guesser.post(f"/orders/{number}/cancel", headers={"Cookie": f"kqo_{number}=W-{n}"}))
        over = [
            await guesser.post("/lookup", data={"number": number, "secret": secret}),
            await guesser.post("/api/orders/lookup", json={"number": number, "secret": secret}),
            await guesser.get(f"/orders/{number}", headers={"Cookie": f"kqo_{number}={secret}"}),
            await guesser.post(f"/orders/{number}/cancel", headers={"Cookie": f"kqo_{number}={secret}"}),
        ]

    assert [a.status_code for a in answers] == [404, 404, 303, 404] + [404] * 6
    assert [o.status_code for o in over] == [429] * 4
    assert (await stock_of(rt, sku)).reserved == 1


async def test_a_buyer_holding_the_right_secret_is_never_throttled(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku, _ = await given_stocked_sku(rt, 5)
    number, _ = await buy_on_the_shop(client, sku)
    secret = rt.order_keys.lookup_secret(number)

    pages = [await client.get(f"/orders/{number}", headers=BROWSER) for _ in range(rt.settings.lookup_per_minute + 5)]
    polls = [
        await client.post("/api/orders/lookup", json={"number": number, "secret": secret})
        for _ in range(rt.settings.lookup_per_minute + 5)
    ]

    assert {p.status_code for p in pages} == {200}
    assert {p.status_code for p in polls} == {200}
