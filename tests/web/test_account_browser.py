"""A buyer in a real browser at phone width: sign in by the code mailed to them, see their order history.

Debian's chromium (Playwright, headless) against a real uvicorn server whose worker
mails the code to a real SMTP server (aiosmtpd) in this test. Screenshots go to
$KAQUAN_SCREENSHOTS (or the test's tmp dir).
"""

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect
from tests.support.notices import given_delivered
from tests.support.server import served
from tests.support.smtp import Mailbox, mailbox

from kaquan.runtime import Runtime

pytestmark = pytest.mark.browser
PHONE: ViewportSize = {"width": 390, "height": 844}
SCREENSHOTS = os.environ.get("KAQUAN_SCREENSHOTS")


def shot(page: Page, tmp_path: Path, name: str) -> Path:
    target = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / name), full_page=True)
    return target / name


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[tuple[str, Mailbox, dict[str, str]]]:
    """A shop with one order of ann's and one of bob's, placed signed in; its worker mails through `box`."""
    placed: dict[str, str] = {}

    async def seed(rt: Runtime) -> None:
        placed["ann"] = (await given_delivered(rt, buyer_contact="ann@example.com")).number
        placed["bob"] = (await given_delivered(rt, buyer_contact="bob@example.com")).number

    with mailbox() as box:
        settings = {"smtp_host": "127.0.0.1", "smtp_port": box.port, "smtp_tls": "none"}
        with served(tmp_path, seed, run_worker=True, **settings) as url:
            yield url, box, placed


def mailed_code(box: Mailbox, to: str, *, timeout_s: float = 15.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for mail in reversed(box.received):
            found = re.search(r"验证码是 (\d{6})", mail.get_content()) if mail["To"] == to else None
            if found:
                return found.group(1)
        time.sleep(0.1)
    raise AssertionError(f"no code mailed to {to}")


def test_a_buyer_signs_in_by_email_code_on_a_phone_and_sees_only_their_orders(
    shop: tuple[str, Mailbox, dict[str, str]], browser: Browser, tmp_path: Path
) -> None:
    url, box, placed = shop
    page = browser.new_context(viewport=PHONE, locale="zh-CN").new_page()  # a Chinese phone: the shop in Chinese
    page.goto(url + "/")
    page.locator("#nav-account").click()

    page.wait_for_url(f"{url}/account/sign-in")
    expect(page.locator("h1")).to_have_text("登录查看我的订单")
    page.locator('input[name="contact"]').fill("ann@example.com")
    page.get_by_role("button", name="发送验证码").click()
    expect(page.locator("#code-sent")).to_contain_text("ann@example.com")
    shot(page, tmp_path, "account-code-390.png")
    page.locator('input[name="code"]').fill(mailed_code(box, "ann@example.com"))
    page.get_by_role("button", name="登录").click()

    page.wait_for_url(f"{url}/account/orders")
    expect(page.locator("#signed-in-as")).to_have_text("已登录：ann@example.com")
    orders = page.locator(".history-order")
    expect(orders).to_have_count(1)
    expect(orders.first).to_have_attribute("data-number", placed["ann"])
    expect(orders.first.locator(".status")).to_have_text("已发货")
    assert placed["bob"] not in page.content()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing overflows
    shot(page, tmp_path, "account-history-390.png")

    orders.first.locator("a").click()
    page.wait_for_url(f"{url}/orders/{placed['ann']}")
    expect(page.locator("#order-status")).to_have_attribute("data-status", "delivered")

    page.goto(url + "/account/orders")
    page.locator("#sign-out button").click()
    page.wait_for_url(url + "/")
    page.goto(url + "/account/orders")
    page.wait_for_url(f"{url}/account/sign-in")
