"""The flash-sale live page in a real browser: it refreshes its counters by itself when a buyer wins, reads
well at 1280 px and at 390 px (nothing wider than the screen), and ends the event after asking.

Screenshots go to $KAQUAN_SCREENSHOTS (or the test's tmp dir), as the other browser tests' do.
"""

import os
import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from tests.support.identity import PASSWORD, given_user
from tests.support.server import served

from kaquan.flashsale import service
from kaquan.flashsale.schemas import EventCreate
from kaquan.kit import clock
from kaquan.runtime import Runtime

pytestmark = pytest.mark.browser
SCREENSHOTS = os.environ.get("KAQUAN_SCREENSHOTS")


@pytest.fixture
def live_event(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A server with an operator `olga` and a live flash sale of 5 units of the demo SKU VIDEO-1M."""
    made: dict[str, int] = {}

    async def seed(rt: Runtime) -> None:
        await given_user(rt, "olga", "operator")
        async with rt.db.transaction() as session:
            event = await service.create_event(
                rt.db,
                session,
                EventCreate(
                    name="双十二 视频月卡秒杀",
                    sku="VIDEO-1M",
                    starts_at=clock.now(),
                    ends_at=clock.now() + timedelta(hours=2),
                    stock=5,
                    price_minor=990,
                    per_buyer_limit=2,
                    requires_verified_buyer=False,
                ),
                actor="olga",
            )
        made["event"] = event.id

    with served(tmp_path, seed) as url:
        yield url, made["event"]


def shot(page: Page, tmp_path: Path, name: str) -> None:
    target = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / name), full_page=True)


def fits_the_screen(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_the_live_page_refreshes_itself_fits_a_phone_and_ends_the_event(
    live_event: tuple[str, int], browser: Browser, tmp_path: Path
) -> None:
    url, event_id = live_event
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"{url}/admin/flash/{event_id}")
    page.locator('input[name="username"]').fill("olga")
    page.locator('input[name="password"]').fill(PASSWORD)
    page.locator("#login-submit").click()
    page.wait_for_url(f"{url}/admin/flash/{event_id}")
    expect(page.locator("#live-status")).to_have_text("进行中")
    expect(page.locator("#live-sold")).to_have_text("0")
    expect(page.locator("#live-held")).to_have_text("5")

    bought = httpx.post(
        f"{url}/api/flash/{event_id}/purchase",
        json={"buyer": "ann@example.com", "quantity": 2, "request_id": secrets.token_hex(8)},
        headers={"X-Device-Token": secrets.token_urlsafe(32)},
    )
    assert bought.status_code == 200 and bought.json()["result"] == "won", bought.text

    expect(page.locator("#live-sold")).to_have_text("2", timeout=10_000)  # the page's own polling, no reload
    expect(page.locator("#live-purchases")).to_have_text("1")
    expect(page.locator("#live-gate-tokens")).to_have_text("3")
    expect(page.locator("#live-gate")).to_have_text("开放")
    assert fits_the_screen(page)
    shot(page, tmp_path, "console-flash-live-1280.png")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.locator("#live-sold")).to_have_text("2")
    assert fits_the_screen(page)
    shot(page, tmp_path, "console-flash-live-390.png")

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#end-event").click()
    expect(page.locator("#live-status")).to_have_text("已结束")
    expect(page.locator("#live-held")).to_have_text("0")
    expect(page.locator("#end-event")).to_have_count(0)

    page.locator("#lang-en").click()
    expect(page.locator("#live-status")).to_have_text("ended")
    expect(page.locator("h1")).to_contain_text("Flash sale")
    context.close()
