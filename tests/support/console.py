"""Test helpers for the admin console over HTTP: a browser-like client that signs in with the form."""

import re
from dataclasses import dataclass

import httpx
from tests.support.http import BROWSER
from tests.support.identity import PASSWORD

HTML = BROWSER  # the console's pages are asked for as a browser asks
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def csrf_of(page: httpx.Response) -> str:
    """The CSRF token a console page carries in its forms."""
    found = _CSRF.search(page.text)
    assert found is not None, "the page has no form carrying a CSRF token"
    return found.group(1)


@dataclass
class Console:
    """A signed-in console browser: the session cookie lives in the client, the forms' token here."""

    client: httpx.AsyncClient
    csrf: str

    async def get(self, path: str) -> httpx.Response:
        return await self.client.get(path, headers=HTML)

    async def post(self, path: str, data: dict[str, str] | None = None, **kwargs: object) -> httpx.Response:
        form = {"csrf_token": self.csrf, **(data or {})}
        return await self.client.post(path, data=form, headers=HTML, **kwargs)  # type: ignore[arg-type]


async def login_form(client: httpx.AsyncClient, username: str, password: str, totp: str = "") -> httpx.Response:
    """Open the sign-in page (which sets its form token cookie) and post the form as a browser does."""
    page = await client.get("/admin/login", headers=HTML)
    assert page.status_code == 200, page.text
    form = {"username": username, "password": password, "totp": totp, "csrf_token": csrf_of(page), "next": "/admin/"}
    return await client.post("/admin/login", data=form, headers=HTML)


async def console_sign_in(client: httpx.AsyncClient, username: str = "alice", password: str = PASSWORD) -> Console:
    response = await login_form(client, username, password)
    assert response.status_code == 303, response.text
    dashboard = await client.get("/admin/products", headers=HTML)
    return Console(client, csrf_of(dashboard))
