"""对账 in a real browser: finance uploads a WeChat Pay trade bill as downloaded, matches the day, sees the
differences in words and yuan, and resolves one; the page also reads on a phone.

Drives Debian's chromium through Playwright against a real uvicorn server (tests.support.server).
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from tests.support.identity import PASSWORD, given_user
from tests.support.server import served
from tests.support.statements import wechat_bill, wechat_payment, wechat_refund

from kaquan.runtime import Runtime

pytestmark = pytest.mark.browser
SCREENSHOTS = os.environ.get("KAQUAN_SCREENSHOTS")


@pytest.fixture
def console(tmp_path: Path) -> Iterator[str]:
    async def seed(rt: Runtime) -> None:
        await given_user(rt, "fiona", "finance")

    with served(tmp_path, seed) as url:
        yield url


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


def test_finance_uploads_a_wechat_bill_sees_the_differences_and_resolves_one(
    console: str, browser: Browser, tmp_path: Path
) -> None:
    bill = tmp_path / "微信支付交易账单_20261205.csv"
    bill.write_bytes(
        wechat_bill(
            [
                wechat_payment(1, fen=1990, fee=12),
                wechat_payment(2, fen=5000, fee=30, at="2026-12-05 13:20:45"),
                wechat_refund(3, fen=990, fee_back=6),
            ]
        )
    )
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in(page, console, "fiona")
    page.locator("#nav-reconciliation").click()
    expect(page.locator("h1")).to_have_text("对账")

    page.locator("#statement-file").set_input_files(str(bill))
    page.locator("#upload-source").fill("wechatpay")
    page.locator("#upload-submit").click()
    expect(page.locator("#import-result")).to_contain_text("读取 3 行，新增 3 行")

    page.locator("#match-first").fill("2026-12-05")
    page.locator("#match-submit").click()
    expect(page.locator("#match-result")).to_contain_text("3 笔差异待处理")
    rows = page.locator("#worklist tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("#worklist")).to_contain_text("系统缺失")
    expect(page.locator("#worklist")).to_contain_text("退款系统缺失")
    expect(page.locator("#worklist")).to_contain_text("¥50.00")
    expect(page.locator("#worklist")).to_contain_text("2026-12-05 13:20:45")
    shot(page, tmp_path, "reconciliation-1280.png")

    first = rows.first
    first.locator("form.resolve select").select_option("write_off")
    first.locator("form.resolve input[name=note]").fill("查无此单，核销")
    first.locator("form.resolve button").click()
    expect(page.locator("#worklist tbody tr")).to_have_count(2)
    page.locator("#filter-state").select_option("resolved")
    page.locator("#filter-submit").click()
    expect(page.locator("#worklist tbody tr")).to_have_count(1)
    expect(page.locator("#worklist")).to_contain_text("核销差额")
    expect(page.locator("#worklist")).to_contain_text("查无此单，核销")

    with page.expect_download() as download:
        page.locator("#export-csv").click()
    exported = Path(download.value.path()).read_bytes()
    assert exported.startswith("\ufeff编号 id,".encode()) and "核销差额".encode() in exported

    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True).new_page()
    sign_in(phone, console, "fiona")
    phone.goto(console + "/admin/reconciliation")
    expect(phone.locator("#worklist tbody tr")).to_have_count(2)
    shot(phone, tmp_path, "reconciliation-390.png")
