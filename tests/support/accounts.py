"""Buyer accounts in tests: the sign-in forms as a browser fills them, the code read from the mail it came in."""

import re

import httpx
from tests.support.http import BROWSER
from tests.support.smtp import Mailbox

from kaquan.runtime import Runtime
from kaquan.worker import run_once

_FORM_TOKEN = re.compile(r'name="form_token" value="([^"]+)"')
_CODE = re.compile(r"\b(\d{6})\b")


def form_token(page: httpx.Response) -> str:
    found = _FORM_TOKEN.search(page.text)
    assert found, page.text
    return found.group(1)


async def ask_for_code(client: httpx.AsyncClient, contact: str) -> httpx.Response:
    """Open the sign-in page and send its form for `contact`; the answer (the code form, or a refusal)."""
    page = await client.get("/account/sign-in", headers=BROWSER)
    return await client.post(
        "/account/sign-in", data={"contact": contact, "form_token": form_token(page)}, headers=BROWSER
    )


async def mailed_code(rt: Runtime, box: Mailbox, to: str) -> str:
    """Let the worker send the code, and read it from the newest mail `to` received."""
    before = len(box.received)
    await run_once(rt)
    sent = [mail for mail in box.wait_for(before + 1) if mail["To"] == to]
    assert sent, f"no mail to {to}"
    found = _CODE.search(sent[-1].get_content())
    assert found
    return found.group(1)


async def enter_code(client: httpx.AsyncClient, form: httpx.Response, contact: str, code: str) -> httpx.Response:
    return await client.post(
        "/account/sign-in/code",
        data={"contact": contact, "code": code, "form_token": form_token(form)},
        headers=BROWSER,
    )


async def sign_in(rt: Runtime, client: httpx.AsyncClient, box: Mailbox, contact: str) -> None:
    """The whole sign-in by e-mail code, as a buyer does it; the client then carries the buyer cookie."""
    form = await ask_for_code(client, contact)
    assert form.status_code == 200, form.text
    signed = await enter_code(client, form, contact, await mailed_code(rt, box, contact))
    assert (signed.status_code, signed.headers["location"]) == (303, "/account/orders"), signed.text
