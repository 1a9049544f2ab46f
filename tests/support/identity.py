"""Test helpers for admin identities: users, sign-in over HTTP, and what a refusal must leave unchanged."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import func, select

from kaquan import identity
from kaquan.all_models import metadata
from kaquan.identity.models import AdminUser
from kaquan.runtime import Runtime

PASSWORD = "correct horse battery staple"
# The `headers_for` fixture: `await headers_for("support")` is the bearer header of a fresh user of that role.
HeadersFor = Callable[..., Awaitable[dict[str, str]]]


async def given_user(rt: Runtime, username: str = "alice", role: str = "owner", password: str = PASSWORD) -> AdminUser:
    async with rt.db.transaction() as session:
        return await identity.create_user(session, username, password, role, actor="test")


async def row_counts(rt: Runtime) -> dict[str, int]:
    """Rows per table across the whole schema, once the rows risk control writes behind the requests are in."""
    await rt.risk.flush()
    async with rt.db.read() as session:
        return {
            table.name: int((await session.execute(select(func.count()).select_from(table))).scalar_one())
            for table in metadata.sorted_tables
        }


async def user_row(rt: Runtime, username: str) -> AdminUser:
    async with rt.db.read() as session:
        return (await session.execute(select(AdminUser).where(AdminUser.username == username))).scalar_one()


@dataclass
class Browser:
    """A signed-in admin browser: the session cookie lives in the client, the CSRF token here."""

    client: httpx.AsyncClient
    csrf: str

    @property
    def csrf_header(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf}


async def sign_in(
    client: httpx.AsyncClient, username: str = "alice", password: str = PASSWORD, totp: str | None = None
) -> Browser:
    body: dict[str, Any] = {"username": username, "password": password}
    if totp is not None:
        body["totp"] = totp
    response = await client.post("/admin/api/session", json=body)
    assert response.status_code == 200, response.text
    return Browser(client, response.json()["csrf_token"])


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code
