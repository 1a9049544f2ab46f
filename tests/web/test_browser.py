"""A buyer in a real browser: buy, pay on the dev gateway, see the codes, find the order from another browser.

Drives Debian's chromium through Playwright against a real uvicorn server on a
fresh, migrated SQLite database seeded with the demo catalog.
"""

import asyncio
import base64
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright

from kaquan import demo
from kaquan import runtime as runtime_module
from kaquan.kit.config import Settings
from kaquan.kit.crypto import new_key
from kaquan.kit.db import Database
from kaquan.kit.migrate import upgrade
from kaquan.web.app import create_app

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        if os.environ.get("KAQUAN_REQUIRE_BROWSER") == "1":
            pytest.fail(f"KAQUAN_REQUIRE_BROWSER=1 but there is no chromium at {CHROMIUM}")
        pytest.skip(f"no chromium at {CHROMIUM}")
    return CHROMIUM


@pytest.fixture
def shop_url(tmp_path: Path) -> Iterator[str]:
    """A real kaquan server on a free local port, over a fresh database holding the demo catalog."""
    settings = Settings(
        var_dir=tmp_path / "var",
        database_url=f"sqlite:///{tmp_path / 'kaquan.db'}",
        redis_url=None,
        master_key=base64.b64encode(new_key()).decode(),
    )

    async def prepare() -> None:
        db = Database(settings.resolved_database_url())
        await upgrade(db)
        rt = await runtime_module.start(settings, db=db)
        try:
            assert await demo.seed(rt)
        finally:
            await rt.close()

    asyncio.run(prepare())
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.05)
        assert server.started, "the kaquan server did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


@pytest.fixture
def browser(chromium_path: Path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium_path), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def delivered_codes(page: Page) -> list[str]:
    return [text.strip() for text in page.locator("#codes td.secret").all_inner_texts()]


def test_a_buyer_pays_sees_the_codes_and_finds_the_order_again_from_another_browser(
    shop_url: str, browser: Browser, tmp_path: Path
) -> None:
    buyer = browser.new_context()
    page = buyer.new_page()
    page.goto(shop_url + "/")
    video = page.locator('section.card[data-sku="VIDEO-1M"]')
    expect(video.locator(".price")).to_contain_text("CNY 19.90")
    expect(video.locator(".stock")).to_contain_text("60")

    video.locator('input[name="quantity"]').fill("1")
    video.get_by_role("button", name="Buy 购买").click()

    page.wait_for_url(f"{shop_url}/orders/*")
    expect(page.locator("#order-status")).to_have_text("pending_payment")
    number = page.locator("#order-number").inner_text().strip()
    secret = page.locator("#lookup-secret").inner_text().strip()
    assert page.url == f"{shop_url}/orders/{number}"
    assert secret

    page.locator("#pay").click()
    page.wait_for_url(f"{shop_url}/pay/dev/*")
    expect(page.locator("#amount")).to_have_text("CNY 19.90")
    page.locator("#confirm-pay").click()

    page.wait_for_url(f"{shop_url}/orders/{number}")
    expect(page.locator("#order-status")).to_have_text("delivered")
    codes = delivered_codes(page)
    assert len(codes) == 1
    assert len(codes[0]) == 16
    page.screenshot(path=str(tmp_path / "delivered-order.png"), full_page=True)
    buyer.close()

    stranger = browser.new_context()
    page = stranger.new_page()
    page.goto(f"{shop_url}/orders/{number}")
    page.wait_for_url(f"{shop_url}/lookup?number={number}")
    assert delivered_codes(page) == []

    page.locator('input[name="number"]').fill(number)
    page.locator('input[name="secret"]').fill(secret)
    page.get_by_role("button", name="Find 查询").click()

    page.wait_for_url(f"{shop_url}/orders/{number}")
    expect(page.locator("#order-status")).to_have_text("delivered")
    assert delivered_codes(page) == codes

    other = browser.new_context()
    page = other.new_page()
    page.goto(f"{shop_url}/lookup")
    page.locator('input[name="number"]').fill(number)
    page.locator('input[name="secret"]').fill("WXYZ-WXYZ-WXYZ-WXYZ")
    page.get_by_role("button", name="Find 查询").click()

    expect(page.locator("#lookup-error")).to_be_visible()
    assert page.url == f"{shop_url}/lookup"
    assert codes[0] not in page.content()
    stranger.close()
    other.close()
