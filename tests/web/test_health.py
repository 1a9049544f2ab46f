"""The probes a load balancer asks: alive at once, ready only with a migrated database and a working worker."""

import httpx

from kaquan.operations import beat
from kaquan.runtime import Runtime


async def test_healthz_answers_without_credentials_or_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["cache-control"] == "no-store"


async def test_readyz_waits_for_the_first_worker_pass_and_says_which_check_failed(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    before = await client.get("/readyz")
    assert before.status_code == 503
    assert before.json() == {
        "status": "not_ready",
        "checks": {
            "migrations": {"ok": True, "detail": "current"},
            "worker": {"ok": False, "detail": "no worker has run yet"},
        },
    }

    await beat(rt.db)
    after = await client.get("/readyz")

    assert after.status_code == 200
    assert after.json()["status"] == "ready"
