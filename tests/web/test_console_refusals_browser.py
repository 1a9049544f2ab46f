"""In a real browser, at 1280 px and at 390 px: an owner reprices a SKU and takes another off sale, and the audit
trail says both in words; an unknown order and, for a support user, an owner's page are refusals inside the
signed-in console (its menu, the user's name, the language switch), in the page's language, with a request id.

Screenshots go to KAQUAN_SCREENSHOTS (or the test's tmp dir), as the other console browser tests do.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from tests.support.console_browser import edit_on_the_product_page
from tests.support.identity import PASSWORD, given_user
from tests.support.server import served

from kaquan.runtime import Runtime

pytestmark = pytest.mark.browser
SCREENSHOTS = os.environ.get("KAQUAN_SCREENSHOTS")
WORDS = {
    "zh": {
        "price": "价格：¥54.00 → ¥49.90",
        "sale": "状态：在售 → 下架",
        "not_found": "未找到",
        "no_order": "没有这个订单号的订单。",
        "forbidden": "没有权限",
        "needs": "需要的权限：管理用户",
        "request_id": "请求编号",
    },
    "en": {
        "price": "Price: ¥54.00 → ¥49.90",
        "sale": "Status: On sale → Off sale",
        "not_found": "Not found",
        "no_order": "No order has this number.",
        "forbidden": "Not allowed",
        "needs": "Needs the permission: Manage users",
        "request_id": "Request ID",
    },
}
# What the service says in English, which a Chinese page keeps folded away in its technical details.
SERVICE_SENTENCES = ("this needs", "no order matches", "lookup secret")


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[str]:
    """The demo shop with an owner `alice` and a support user `sam`."""

    async def seed(rt: Runtime) -> None:
        await given_user(rt, "alice", "owner")
        await given_user(rt, "sam", "support")

    with served(tmp_path, seed) as url:
        yield url


def sign_in(page: Page, url: str, username: str, lang: str) -> None:
    page.goto(url + "/admin/login")
    page.locator(f"#lang-{lang}").click()
    page.locator('input[name="username"]').fill(username)
    page.locator('input[name="password"]').fill(PASSWORD)
    page.locator("#login-submit").click()
    page.wait_for_url(f"{url}/admin/")


def looked_at(page: Page, folder: Path, name: str, width: int) -> None:
    """Nothing is wider than the screen; the page is shot for a person to look at."""
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= width, f"{page.url} is {wide} px wide at {width} px"
    target = Path(SCREENSHOTS) if SCREENSHOTS else folder
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / name), full_page=True)


def in_the_console_frame(page: Page, user: str, lang: str) -> None:
    expect(page.locator("#console-nav")).to_be_visible()
    expect(page.locator("#whoami")).to_have_text(user)
    expect(page.locator("#lang-zh")).to_be_visible()
    expect(page.locator("#lang-en")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN" if lang == "zh" else "en")
    expect(page.locator(".error-page .request-id")).to_contain_text(WORDS[lang]["request_id"])
    expect(page.locator("#request-id")).not_to_be_empty()
    expect(page.locator("#error-home")).to_be_visible()
    if lang == "zh":
        shown = page.locator("main").inner_text()
        assert not any(sentence in shown for sentence in SERVICE_SENTENCES), shown


@pytest.mark.parametrize(("width", "lang"), [(1280, "zh"), (390, "zh"), (390, "en")])
def test_the_audit_trail_says_changes_in_words_and_refusals_stay_inside_the_console(
    shop: str, browser: Browser, tmp_path: Path, width: int, lang: str
) -> None:
    url = shop
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    sign_in(page, url, "alice", lang)
    edit_on_the_product_page(page, url, "VIDEO-3M", "49.90", "VIDEO-12M")

    page.goto(url + "/admin/audit?action=sku.updated")
    changes = page.locator('#audit tr[data-action="sku.updated"] td.change')
    expect(changes.filter(has_text=WORDS[lang]["price"])).to_have_count(1)
    expect(changes.filter(has_text=WORDS[lang]["sale"])).to_have_count(1)
    expect(page.locator("#audit td.change").filter(has_text="price_minor")).to_have_count(0)
    looked_at(page, tmp_path, f"refusals-audit-{width}-{lang}.png", width)

    page.goto(url + "/admin/orders/NO-SUCH-ORDER")
    expect(page.locator('[data-status="404"] h1')).to_have_text(WORDS[lang]["not_found"])
    expect(page.locator("#error-words")).to_contain_text(WORDS[lang]["no_order"])
    in_the_console_frame(page, "alice", lang)
    looked_at(page, tmp_path, f"refusals-404-{width}-{lang}.png", width)
    context.close()

    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    sign_in(page, url, "sam", lang)
    page.goto(url + "/admin/users")
    expect(page.locator('[data-status="403"] h1')).to_have_text(WORDS[lang]["forbidden"])
    expect(page.locator("#error-permission")).to_contain_text(WORDS[lang]["needs"])
    in_the_console_frame(page, "sam", lang)
    expect(page.locator('#console-nav a[href="/admin/users"]')).to_have_count(0)
    looked_at(page, tmp_path, f"refusals-403-{width}-{lang}.png", width)
    context.close()
