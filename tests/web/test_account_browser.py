"""A buyer in a real browser, at desktop and phone widths, in Chinese and in English: sign in by the code
mailed to them, see their order history.

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
WIDTHS = (1280, 390)
LANGUAGES = ("zh", "en")
WORDS = {
    "zh": {
        "title": "登录查看我的订单",
        "send": "发送验证码",
        "sign_in": "登录",
        "as": "已登录：",
        "delivered": "已发货",
    },
    "en": {
        "title": "Sign in to see your orders",
        "send": "Send code",
        "sign_in": "Sign in",
        "as": "Signed in as ",
        "delivered": "Delivered",
    },
}
SCREENSHOTS = os.environ.get("KAQUAN_SCREENSHOTS")


def shot(page: Page, tmp_path: Path, name: str) -> Path:
    target = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / name), full_page=True)
    return target / name


def ann(width: int, lang: str) -> str:
    """A buyer per walk: each asks for her own code, so no walk waits out another's resend limit."""
    return f"ann-{width}-{lang}@example.com"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Mailbox, dict[str, str]]]:
    """A shop with one order of each walk's ann and one of bob's, placed signed in; its worker mails through `box`."""
    placed: dict[str, str] = {}

    async def seed(rt: Runtime) -> None:
        for contact in [ann(width, lang) for width in WIDTHS for lang in LANGUAGES] + ["bob@example.com"]:
            placed[contact] = (await given_delivered(rt, buyer_contact=contact)).number

    with mailbox() as box:
        settings = {"smtp_host": "127.0.0.1", "smtp_port": box.port, "smtp_tls": "none"}
        with served(tmp_path_factory.mktemp("accounts"), seed, run_worker=True, **settings) as url:
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


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("width", WIDTHS)
def test_a_buyer_signs_in_by_email_code_and_sees_only_their_orders(
    shop: tuple[str, Mailbox, dict[str, str]], browser: Browser, tmp_path: Path, width: int, lang: str
) -> None:
    url, box, placed = shop
    words, contact = WORDS[lang], ann(width, lang)
    viewport: ViewportSize = {"width": width, "height": 844 if width < 800 else 900}
    page = browser.new_context(viewport=viewport, locale="zh-CN" if lang == "zh" else "en-US").new_page()
    page.goto(url + "/")  # the browser's language picks the shop's
    page.locator("#nav-account").click()

    page.wait_for_url(f"{url}/account/sign-in")
    expect(page.locator("h1")).to_have_text(words["title"])
    page.locator('input[name="contact"]').fill(contact)
    page.get_by_role("button", name=words["send"]).click()
    expect(page.locator("#code-sent")).to_contain_text(contact)
    shot(page, tmp_path, f"account-code-{width}-{lang}.png")
    page.locator('input[name="code"]').fill(mailed_code(box, contact))
    page.get_by_role("button", name=words["sign_in"], exact=True).click()

    page.wait_for_url(f"{url}/account/orders")
    expect(page.locator("#signed-in-as")).to_have_text(words["as"] + contact)
    orders = page.locator(".history-order")
    expect(orders).to_have_count(1)
    expect(orders.first).to_have_attribute("data-number", placed[contact])
    expect(orders.first.locator(".status")).to_have_text(words["delivered"])
    assert placed["bob@example.com"] not in page.content()
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # nothing overflows
    shot(page, tmp_path, f"account-history-{width}-{lang}.png")

    orders.first.locator("a").click()
    page.wait_for_url(f"{url}/orders/{placed[contact]}")
    expect(page.locator("#order-status")).to_have_attribute("data-status", "delivered")

    page.goto(url + "/account/orders")
    page.locator("#sign-out button").click()
    page.wait_for_url(url + "/")
    page.goto(url + "/account/orders")
    page.wait_for_url(f"{url}/account/sign-in")
