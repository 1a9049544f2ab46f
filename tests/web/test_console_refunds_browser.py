"""After sale in a real browser: support asks for a partial refund on the order page, finance approves it in
its queue of refunds awaiting approval, and the order page shows the refund in words.

Drives Debian's chromium through Playwright against a real uvicorn server (tests.support.server).
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from tests.support.builders import GivenSku, buy
from tests.support.identity import PASSWORD, given_user
from tests.support.server import served

from kaquan.catalog import service as catalog
from kaquan.runtime import Runtime

pytestmark = pytest.mark.browser
SCREENSHOTS = os.environ.get("KAQUAN_SCREENSHOTS")


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A server with the demo catalog, a support user `sam`, a finance user `fiona` and one delivered order."""
    sold: list[str] = []

    async def seed(rt: Runtime) -> None:
        await given_user(rt, "sam", "support")
        await given_user(rt, "fiona", "finance")
        async with rt.db.read() as session:
            sku = await catalog.get_sku(session, "VIDEO-1M")
        bought = await buy(rt, GivenSku(sku.id, sku.code))
        assert bought.ok, bought.error
        sold.append(bought.number)

    with served(tmp_path, seed) as url:
        yield url, sold[0]


def sign_in(page: Page, url: str, username: str) -> None:
    page.goto(url + "/admin/login")
    page.locator('input[name="username"]').fill(username)
    page.locator('input[name="password"]').fill(PASSWORD)
    page.locator("#login-submit").click()
    page.wait_for_url(f"{url}/admin/**")


def shot(page: Page, tmp_path: Path, name: str) -> None:
    target = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / name), full_page=True)


def test_support_asks_for_a_partial_refund_and_finance_approves_it(
    console: tuple[str, str], browser: Browser, tmp_path: Path
) -> None:
    url, number = console
    support = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in(support, url, "sam")
    support.goto(f"{url}/admin/orders/{number}")
    expect(support.locator("#refund-amount")).to_have_value("19.90")  # what remains, in yuan
    expect(support.locator("#resend-form")).to_be_visible()

    support.locator("#refund-amount").fill("5.00")
    support.locator("#refund-reason").fill("会员到账晚了一天，补偿部分款项")
    support.locator("#refund-submit").click()
    support.wait_for_url(f"{url}/admin/orders/{number}")
    expect(support.locator("#refunds .refund-status")).to_have_text("待审批")
    expect(support.locator("#refundable")).to_contain_text("¥14.90")
    expect(support.locator("#order-status")).to_have_text("delivered")
    shot(support, tmp_path, "console-refund-asked.png")

    finance = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    sign_in(finance, url, "fiona")
    finance.locator("#nav-refunds").click()
    row = finance.locator("#awaiting tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(number)
    expect(row).to_contain_text("¥5.00")
    expect(row).to_contain_text("sam")
    shot(finance, tmp_path, "console-refunds-awaiting.png")

    row.locator("button.approve").click()
    expect(finance.locator("#none-awaiting")).to_be_visible()

    support.reload()
    expect(support.locator("#refunds .refund-status")).to_have_text("已申请")  # the worker sends it to the gateway
    expect(support.locator("#refunds")).to_contain_text("fiona")
    support.locator("#lang-en").click()
    expect(support.locator("#refunds .refund-status")).to_have_text("requested")
    shot(support, tmp_path, "console-refund-approved-en.png")
