"""A buyer whose order is challenged: the shop page's own script solves the proof-of-work and the order
goes through, with nothing for the buyer to do but wait a moment."""

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from tests.support.server import browser, chromium, chromium_path, served

from kaquan.risk import rules
from kaquan.runtime import Runtime

pytestmark = pytest.mark.browser
__all__ = ["browser", "chromium", "chromium_path"]


async def challenge_every_shop_order(rt: Runtime) -> None:
    async with rt.db.transaction() as session:
        await rules.add(
            session, name="check every buyer", expression="request.action == 'shop.order'", outcome="challenge",
            enabled=True, actor="test",
        )  # fmt: skip


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("risk-shop")
    with served(folder, challenge_every_shop_order, risk_pow_bits=14) as url:
        yield url, folder / "kaquan.db"


def recorded(database: Path, wanted: int) -> list[tuple[str, list[str], dict[str, object]]]:
    """The shop's recorded decisions, oldest first, once `wanted` of them are written (the log trails)."""
    for _ in range(100):
        with sqlite3.connect(database) as connection:
            rows = connection.execute("SELECT outcome, reasons, features FROM risk_decisions ORDER BY id").fetchall()
        if len(rows) >= wanted:
            return [(outcome, json.loads(reasons), json.loads(features)) for outcome, reasons, features in rows]
        time.sleep(0.05)
    raise AssertionError(f"fewer than {wanted} decisions were recorded")


def test_the_page_solves_the_challenge_and_the_order_goes_through(shop: tuple[str, Path], browser: Browser) -> None:
    url, database = shop
    page = browser.new_context(locale="zh-CN").new_page()
    page.goto(url + "/products/1")
    page.locator('label.sku-option[data-sku="VIDEO-3M"]').click()
    page.get_by_role("button", name="立即购买").click()

    page.wait_for_url(re.compile(rf"{re.escape(url)}/orders/\w+$"), timeout=30_000)
    expect(page.locator("#order-status")).to_have_text("待支付")
    [(first, _, seen), (second, reasons, _)] = recorded(database, 2)
    assert (first, second) == ("challenge", "approve")
    assert reasons == ["rule:check every buyer", "challenge_solved"]
    assert isinstance(seen["page.submit_ms"], int) and seen["page.submit_ms"] > 0
