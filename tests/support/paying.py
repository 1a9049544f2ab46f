"""Paying through the shop's pay page the way a buyer's browser does."""

import httpx


async def dev_pay_link(client: httpx.AsyncClient, pay_url: str) -> str:
    """Choose the dev gateway on kaquan's pay page; returns the dev gateway's own pay page it sends the buyer to."""
    chosen = await client.post(pay_url, data={"method": "dev:page"})
    assert chosen.status_code == 303, chosen.text
    return chosen.headers["location"]
