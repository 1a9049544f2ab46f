"""A buyer whose browser runs no JavaScript: a challenged order shows a picture captcha served by kaquan, a
right answer (in any case) places the order once, and a wrong, expired or reused answer places nothing."""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from tests.support.server import browser, chromium, chromium_path, served

from kaquan.kit import clock
from kaquan.risk import rules
from kaquan.risk.captcha import ImageCaptchas
from kaquan.runtime import Runtime

pytestmark = pytest.mark.browser
__all__ = ["browser", "chromium", "chromium_path"]
READER: list[ImageCaptchas] = []  # the server's captchas (same key): the test reads the picture through it


async def challenge_every_shop_order(rt: Runtime) -> None:
    async with rt.db.transaction() as session:
        await rules.add(
            session, name="check every buyer", expression="request.action == 'shop.order'", outcome="challenge",
            enabled=True, actor="test",
        )  # fmt: skip
    READER.append(rt.risk.captchas)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder: Path = tmp_path_factory.mktemp("captcha-shop")
    with served(folder, challenge_every_shop_order) as url:
        yield url


def without_javascript(browser: Browser, url: str) -> Page:
    page = browser.new_context(
        java_script_enabled=False, locale="zh-CN", viewport={"width": 390, "height": 844}
    ).new_page()
    page.goto(url + "/products/1")
    expect(page.locator("#noscript-captcha")).to_be_visible()
    page.locator('label.sku-option[data-sku="VIDEO-3M"]').click()
    page.get_by_role("button", name="立即购买").click()
    expect(page.locator("#captcha-image")).to_be_visible()
    return page


def shown_token(page: Page) -> str:
    return page.locator('input[name="captcha_token"]').get_attribute("value") or ""


def test_a_buyer_without_javascript_reads_the_picture_and_the_order_goes_through(shop: str, browser: Browser) -> None:
    page = without_javascript(browser, shop)
    token = shown_token(page)
    picture = page.request.get(shop + (page.locator("#captcha-image").get_attribute("src") or ""))
    assert picture.status == 200 and picture.headers["content-type"] == "image/png"
    assert picture.body()[:8] == b"\x89PNG\r\n\x1a\n"
    assert page.evaluate("document.getElementById('captcha-image').naturalWidth") == 200  # the browser drew it
    page.locator("#captcha-answer").fill(READER[0].answer_for_tests(token).lower())
    page.locator("#captcha-submit").click()
    page.wait_for_url(re.compile(rf"{re.escape(shop)}/orders/\w+$"))
    expect(page.locator("#order-status")).to_have_text("待支付")


def test_a_wrong_answer_shows_a_new_picture_and_places_nothing(shop: str, browser: Browser) -> None:
    page = without_javascript(browser, shop)
    first = shown_token(page)
    page.locator("#captcha-answer").fill("WRONG")
    page.locator("#captcha-submit").click()
    expect(page.locator("#captcha-error")).to_have_text("输入的字符不正确，请看新图片再试一次。")
    second = shown_token(page)
    assert second != first
    page.locator("#captcha-answer").fill(READER[0].answer_for_tests(second))
    page.locator("#captcha-submit").click()
    page.wait_for_url(re.compile(rf"{re.escape(shop)}/orders/\w+$"))


def test_a_used_or_expired_answer_is_refused(shop: str, browser: Browser) -> None:
    page = without_javascript(browser, shop)
    token = shown_token(page)
    answer = READER[0].answer_for_tests(token)
    form: dict[str, str | float | bool] = {
        name: page.locator(f'#captcha input[name="{name}"]').get_attribute("value") or ""
        for name in ("sku", "quantity", "idempotency_key", "contact", "captcha_token")
    }
    accepted = page.request.post(shop + "/orders", form=form | {"captcha_answer": answer}, max_redirects=0)
    assert accepted.status == 303
    replayed = page.request.post(
        shop + "/orders", form=form | {"captcha_answer": answer}, headers={"Accept": "text/html"}, max_redirects=0
    )
    assert replayed.status == 403 and 'data-reason="captcha.used"' in replayed.text()

    page = without_javascript(browser, shop)
    late_token = shown_token(page)
    clock.travel(301)  # the server runs in this process: its clock moves too
    try:
        page.locator("#captcha-answer").fill(READER[0].answer_for_tests(late_token))
        page.locator("#captcha-submit").click()
        expect(page.locator("#captcha-error")).to_have_attribute("data-reason", "captcha.expired")
    finally:
        clock.reset()
