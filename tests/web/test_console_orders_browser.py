"""The order list in a real browser: filter by status and SKU, download the filtered list as XLSX and read it
back, write a note on an order, at 1280 px; the same list at 390 px fits the phone (the table scrolls inside
its wrapper, the page does not).

Screenshots go to KAQUAN_SCREENSHOTS (or the test's tmp dir), as the other console browser tests do.
"""

import io
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from openpyxl import load_workbook
from playwright.sync_api import Browser, Page, expect
from tests.support.builders import TEST_CLIENT, GivenSku, buy
from tests.support.identity import PASSWORD, given_user
from tests.support.server import served

from kaquan.catalog import service as catalog
from kaquan.orders import service as orders
from kaquan.runtime import Runtime

pytestmark = pytest.mark.browser
SCREENSHOTS = os.environ.get("KAQUAN_SCREENSHOTS")
RAW_STATUSES = ("pending_payment", "delivered", "paid_unfulfilled")


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A server with an owner `alice`, two unpaid orders with contacts and one delivered order."""
    placed: dict[str, str] = {}

    async def seed(rt: Runtime) -> None:
        await given_user(rt, "alice", "owner")
        async with rt.db.transaction() as session:
            sku = await catalog.get_sku(session, "VIDEO-1M")
            for n, contact in enumerate(("zhang.wei@example.com", "13800138000")):
                request = orders.OrderRequest(
                    sku=sku.id,
                    quantity=1,
                    idempotency_key=secrets.token_hex(8),
                    client_token=TEST_CLIENT,
                    contact=contact,
                )
                made = await orders.place(
                    rt.db, session, rt.order_keys, request, max_per_order=10, hold_minutes=rt.settings.hold_minutes
                )
                placed[f"unpaid{n}"] = made.order.number
        bought = await buy(rt, GivenSku(sku.id, sku.code))
        assert bought.ok, bought.error
        placed["delivered"] = bought.number

    with served(tmp_path, seed) as url:
        yield url, placed


def sign_in(page: Page, url: str) -> None:
    page.goto(url + "/admin/orders")
    page.locator('input[name="username"]').fill("alice")
    page.locator('input[name="password"]').fill(PASSWORD)
    page.locator("#login-submit").click()
    page.wait_for_url(f"{url}/admin/orders")


def shot(page: Page, tmp_path: Path, name: str) -> None:
    target = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / name), full_page=True)


def test_an_owner_filters_the_orders_and_downloads_them_on_a_desktop_and_a_phone(
    shop: tuple[str, dict[str, str]], browser: Browser, tmp_path: Path
) -> None:
    url, placed = shop
    desk = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True).new_page()
    sign_in(desk, url)
    expect(desk.locator("#orders tbody tr")).to_have_count(3)  # recent orders, no search needed

    desk.locator("#filter-status").select_option("pending_payment")
    desk.locator("#filter-sku").fill("VIDEO-1M")
    desk.locator("#filter-submit").click()
    desk.wait_for_url("**/admin/orders?*status=pending_payment*")
    rows = desk.locator("#orders tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("待支付")
    expect(rows.first).to_contain_text("UTC+8")
    body = desk.locator("main").inner_text()
    assert not any(raw in body for raw in RAW_STATUSES), body
    shot(desk, tmp_path, "console-orders-1280.png")

    with desk.expect_download() as download:
        desk.locator("#export-orders-xlsx").click()
    sheet = load_workbook(io.BytesIO(Path(download.value.path()).read_bytes()), read_only=True).active
    assert sheet is not None
    header, *lines = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert header[:2] == ["订单号", "状态"]
    assert sorted(str(line[0]) for line in lines) == sorted([placed["unpaid0"], placed["unpaid1"]])
    assert {line[1] for line in lines} == {"待支付"}

    rows.first.locator("a").click()
    desk.locator("#note-text").fill("买家来电，说稍后付款")
    desk.locator("#note-submit").click()
    expect(desk.locator("#noted-notice")).to_be_visible()
    expect(desk.locator("#timeline li.note")).to_contain_text("买家来电，说稍后付款")
    expect(desk.locator("#cancel-form")).to_be_visible()
    shot(desk, tmp_path, "console-order-noted-1280.png")

    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True).new_page()
    sign_in(phone, url)
    phone.goto(f"{url}/admin/orders?status=pending_payment&sku=VIDEO-1M")
    expect(phone.locator("#orders tbody tr")).to_have_count(2)
    page_width = phone.evaluate("document.documentElement.scrollWidth")
    assert page_width <= 390, f"the page is {page_width} px wide on a 390 px phone"
    wrapper = phone.locator("#orders").locator("xpath=..")
    expect(wrapper).to_have_class("scroll")
    shot(phone, tmp_path, "console-orders-390.png")
