"""The admin console in a real browser: sign in, import a batch, find an order, reveal its code with a
reason and see the audit entry, switch language; a support user is refused the audit trail.

Drives Debian's chromium through Playwright against a real uvicorn server (tests.support.server).
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from tests.support.builders import GivenSku, buy, random_codes
from tests.support.identity import PASSWORD, given_user
from tests.support.server import served

from kaquan.catalog import service as catalog
from kaquan.runtime import Runtime

pytestmark = pytest.mark.browser
SCREENSHOTS = os.environ.get("KAQUAN_SCREENSHOTS")


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A server with the demo catalog, an owner `alice`, a support user `sam` and one delivered order."""
    sold: dict[str, str] = {}

    async def seed(rt: Runtime) -> None:
        await given_user(rt, "alice", "owner")
        await given_user(rt, "sam", "support")
        async with rt.db.read() as session:
            sku = await catalog.get_sku(session, "VIDEO-1M")
        bought = await buy(rt, GivenSku(sku.id, sku.code))
        assert bought.ok, bought.error
        sold.update(number=bought.number, secret=bought.codes[0])

    with served(tmp_path, seed) as url:
        yield url, sold


def sign_in(page: Page, url: str, username: str, password: str = PASSWORD) -> None:
    page.locator('input[name="username"]').fill(username)
    page.locator('input[name="password"]').fill(password)
    page.locator("#login-submit").click()


def shot(page: Page, tmp_path: Path, name: str) -> None:
    target = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / name), full_page=True)


def test_an_owner_imports_finds_an_order_reveals_its_code_and_sees_the_audit_entry(
    console: tuple[str, dict[str, str]], browser: Browser, tmp_path: Path
) -> None:
    url, sold = console
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.goto(url + "/admin/")
    page.wait_for_url(f"{url}/admin/login?next=*")

    sign_in(page, url, "alice", "not the password")
    expect(page.locator("#login-message")).to_be_visible()
    sign_in(page, url, "alice")
    page.wait_for_url(f"{url}/admin/")
    expect(page.locator('#stock tr[data-sku="VIDEO-1M"]')).to_be_visible()
    expect(page.locator('#sales .tile[data-currency="CNY"]')).to_contain_text("¥19.90")

    page.locator("#lang-en").click()
    expect(page.locator("h1")).to_have_text("Dashboard")
    shot(page, tmp_path, "console-dashboard.png")

    page.goto(url + "/admin/skus/VIDEO-1M/batches")
    codes = "\n".join(random_codes(3)).encode()
    page.locator('input[name="file"]').set_input_files({"name": "codes.txt", "mimeType": "text/plain", "buffer": codes})
    page.locator("#import-submit").click()
    expect(page.locator("#import-result")).to_contain_text("Imported 3 codes")
    expect(page.locator('#import-result[data-imported="3"]')).to_be_visible()

    page.locator("#console-nav").get_by_role("link", name="Orders").click()
    page.locator('input[name="q"]').fill(sold["number"])
    page.get_by_role("button", name="Search").click()
    page.locator(f'tr[data-order="{sold["number"]}"] a').click()
    page.wait_for_url(f"{url}/admin/orders/{sold['number']}")
    expect(page.locator("#order-status")).to_have_text("delivered")
    expect(page.locator("#masked-codes")).to_contain_text(sold["secret"][-4:])
    assert sold["secret"] not in page.content()
    shot(page, tmp_path, "console-order.png")

    page.locator('#reveal-form input[name="reason"]').fill("buyer reports the code as used")
    page.locator("#reveal-submit").click()
    expect(page.locator("#revealed .secret")).to_have_text(sold["secret"])

    page.goto(url + "/admin/audit")
    entry = page.locator('#audit tr[data-action="codes.revealed"]').first
    expect(entry).to_contain_text("alice")
    expect(entry).to_contain_text("buyer reports the code as used")
    assert sold["secret"] not in page.content()

    page.locator("#lang-zh").click()
    expect(page.locator("h1")).to_have_text("审计日志")


def test_a_support_user_is_refused_the_audit_trail(console: tuple[str, dict[str, str]], browser: Browser) -> None:
    url, _ = console
    page = browser.new_page()
    page.goto(url + "/admin/login")
    sign_in(page, url, "sam")
    page.wait_for_url(f"{url}/admin/")
    expect(page.locator('#console-nav a[href="/admin/audit"]')).to_have_count(0)

    page.goto(url + "/admin/audit")

    expect(page.locator('[data-status="403"]')).to_be_visible()
    expect(page.locator("#error-message")).to_contain_text("audit.read")
