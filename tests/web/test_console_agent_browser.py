"""An agent's console page in a real browser, on a desktop (1280 px) and a phone (390 px): finance tops up in
yuan and sees the ledger, an owner issues a key whose secret is shown once, and a rotation asks for a tick;
the owner's own page enrols two-factor sign-in with a QR code, and the users page names roles in words.

Drives Debian's chromium through Playwright against a real uvicorn server (tests.support.server).
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from tests.support.agents import given_agent
from tests.support.identity import PASSWORD, given_user
from tests.support.server import served

from kaquan.channels import callbacks
from kaquan.runtime import Runtime

pytestmark = pytest.mark.browser
SCREENSHOTS = os.environ.get("KAQUAN_SCREENSHOTS")
WIDER_THAN_THE_SCREEN = """[...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > 390.5 && !e.closest('.scroll'))
  .map(e => e.tagName + '#' + e.id + '.' + e.className).slice(0, 8)"""


@pytest.fixture
def console(tmp_path: Path) -> Iterator[str]:
    """A server with an owner `alice` and an agent `acme` holding ¥1,000.00, a key, a callback URL and one event."""

    async def seed(rt: Runtime) -> None:
        await given_user(rt, "alice", "owner")
        agent = await given_agent(rt, code="acme", deposit_minor=100_000, credit_limit_minor=50_000)
        async with rt.db.transaction() as session:
            await callbacks.set_endpoint(
                rt.db,
                session,
                rt.keyring,
                agent_id=agent.id,
                url="https://93.184.216.34/kaquan/callback",
                allow_private=False,
                actor="seed",
            )
            await callbacks.notify(session, agent_id=agent.id, event_type="order.delivered", data={"order": {}})

    with served(tmp_path, seed) as url:
        yield url


def sign_in(page: Page, url: str) -> None:
    page.goto(url + "/admin/login")
    page.locator('input[name="username"]').fill("alice")
    page.locator('input[name="password"]').fill(PASSWORD)
    page.locator("#login-submit").click()
    page.wait_for_url(f"{url}/admin/**")


def shot(page: Page, tmp_path: Path, name: str) -> None:
    target = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / name), full_page=True)


def test_an_owner_tops_up_issues_a_key_shown_once_and_rotates_it_on_desktop_and_phone(
    console: str, browser: Browser, tmp_path: Path
) -> None:
    url = console
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in(page, url)
    page.locator('#console-nav a[href="/admin/agents"]').click()
    page.locator('#agents a[href="/admin/agents/acme"]').click()
    expect(page.locator("#balance")).to_have_text("¥1,000.00")
    expect(page.locator("#available")).to_have_text("¥1,500.00")
    expect(page.locator("#deliveries .delivery-status")).to_have_text("待发送")

    page.locator("#topup-amount").fill("2,500.50")
    page.locator("#topup-reference").fill("ICBC-20261206-01")
    page.locator("#topup-submit").click()
    expect(page.locator("#done")).to_be_visible()
    expect(page.locator("#balance")).to_have_text("¥3,500.50")
    expect(page.locator("#ledger tbody tr").last).to_contain_text("¥2,500.50")
    expect(page.locator("#ledger tbody tr").last).to_contain_text("充值")
    shot(page, tmp_path, "console-agent-1280.png")

    page.locator("#key-allowlist").fill("203.0.113.7")
    page.locator("#key-submit").click()
    secret = page.locator("#secret-value").inner_text()
    key_id = page.locator("#secret-key-id").inner_text()
    assert len(secret) >= 32
    shot(page, tmp_path, "console-agent-key-once-1280.png")
    page.locator("#secret-done").click()
    row = page.locator(f'#keys tr[data-key="{key_id}"]')
    expect(row).to_contain_text("203.0.113.7/32")
    assert secret not in page.content()

    row.locator("button.rotate").click()  # the unticked box stops the form in the browser
    expect(page).to_have_url(f"{url}/admin/agents/acme")
    row.locator(".rotate-form input[type=checkbox]").check()
    row.locator("button.rotate").click()
    expect(page.locator("#secret-once")).to_have_attribute("data-kind", "rotated")
    assert page.locator("#secret-value").inner_text() not in ("", secret)

    page.locator("#nav-me").click()
    page.locator("#totp-start-submit").click()
    expect(page.locator("#totp-uri")).to_contain_text("otpauth://totp/")
    expect(page.locator("#totp-qr svg")).to_be_visible()
    shot(page, tmp_path, "console-totp-1280.png")
    page.locator("#nav-users").click()
    expect(page.locator('#users tr[data-user="alice"]')).to_contain_text("所有者")
    shot(page, tmp_path, "console-users-1280.png")

    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True).new_page()
    sign_in(phone, url)
    phone.goto(f"{url}/admin/agents/acme")
    phone.locator("#lang-en").click()
    expect(phone.locator("#agent-status")).to_have_text("active")
    expect(phone.locator(f'#keys tr[data-key="{key_id}"] .key-state')).to_contain_text("rotating")
    shot(phone, tmp_path, "console-agent-390-en.png")
    width = phone.evaluate("document.documentElement.scrollWidth")
    wide = phone.evaluate(WIDER_THAN_THE_SCREEN)
    assert width <= 390, f"the agent page is {width} px wide on a 390 px phone: {wide}"
    phone.goto(f"{url}/admin/agents")
    expect(phone.locator('#agents tr[data-agent="acme"]')).to_contain_text("¥3,500.50")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390, phone.evaluate(WIDER_THAN_THE_SCREEN)
    shot(phone, tmp_path, "console-agents-390-en.png")
