"""Settlement in a real browser: finance opens the statements page (zh-CN first), sees a confirmed and a draft
statement with their figures, and downloads one as CSV with a BOM and Chinese headers.

Drives Debian's chromium through Playwright against a real uvicorn server (tests.support.server).
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from tests.support.identity import PASSWORD, given_user
from tests.support.server import served
from tests.support.settlement import TIERS, agent_buys, at_local, confirm, given_rule, given_selling_agent, run

from kaquan.kit import clock
from kaquan.runtime import Runtime

pytestmark = pytest.mark.browser
SCREENSHOTS = os.environ.get("KAQUAN_SCREENSHOTS")


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[str, list[int]]]:
    """A server with a finance user `fiona`, a support user `sam`, and agent A001's November (confirmed) and
    December 1st (draft) statements."""
    runs: list[int] = []

    async def seed(rt: Runtime) -> None:
        await given_user(rt, "fiona", "finance")
        await given_user(rt, "sam", "support")
        at_local(2026, 10, 20)
        agent, sku = await given_selling_agent(rt, price_minor=1_234_567)
        await given_rule(rt, "agent:A001", tiers=TIERS)
        at_local(2026, 11, 10)
        await agent_buys(rt, agent, sku, 1, "N-1")
        at_local(2026, 12, 2)
        november = await run(rt, "agent:A001", "2026-11-01..2026-11-30")
        await confirm(rt, november.id)
        draft = await run(rt, "agent:A001", "2026-12-01..2026-12-01")
        runs.extend([november.id, draft.id])
        clock.reset()

    with served(tmp_path, seed) as url:
        yield url, runs


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


def test_finance_lists_the_statements_and_downloads_one_as_csv(
    console: tuple[str, list[int]], browser: Browser, tmp_path: Path
) -> None:
    url, (november, draft) = console
    page = browser.new_context(viewport={"width": 1280, "height": 700}, accept_downloads=True).new_page()
    sign_in(page, url, "fiona")
    page.locator("#nav-settlement").click()
    page.wait_for_url(f"{url}/admin/settlement")

    expect(page.locator("h1")).to_have_text("结算单")
    confirmed = page.locator(f'#statements tr[data-run="{november}"]')
    expect(confirmed.locator(".status")).to_have_text("已确认")
    expect(confirmed).to_contain_text("agent:A001")
    expect(confirmed).to_contain_text("2026-11-01 – 2026-11-30")
    expect(confirmed).to_contain_text("-¥12,345.67")  # the sale, off the deposit
    expect(confirmed).to_contain_text("¥123.46")  # 1 % commission, half up
    expect(page.locator(f'#statements tr[data-run="{draft}"] .status')).to_have_text("草稿")
    shot(page, tmp_path, "console-settlement.png")

    with page.expect_download() as downloading:
        confirmed.locator("a.download", has_text="CSV").click()
    data = Path(downloading.value.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.decode("utf-8-sig").startswith(f"结算单 Statement,{november}")


def test_support_is_not_shown_settlement(console: tuple[str, list[int]], browser: Browser) -> None:
    url, (november, _) = console
    page = browser.new_context().new_page()
    sign_in(page, url, "sam")
    expect(page.locator("#nav-settlement")).to_have_count(0)
    answer = page.goto(f"{url}/admin/settlement")
    assert answer is not None and answer.status == 403
    assert page.request.get(f"{url}/admin/settlement/{november}.csv").status == 403
