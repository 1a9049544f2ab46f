"""Probes for load balancers and orchestrators: `/healthz` (this process answers) and `/readyz` (send it traffic).

`/readyz` answers 503 with the failing checks when the database is unreachable or not migrated to
this code's head, Redis (when configured) does not answer, or no worker has run a pass within
KAQUAN_READY_WORKER_MAX_AGE_S (0 leaves the worker out); a stalled worker is also alerted to the
operator's channels (operations.alerts), once per interval. Neither probe needs credentials, and
neither says more than a check's name and a short reason.
"""

from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from kaquan.operations import alerts, check_readiness
from kaquan.web.deps import RuntimeDep

router = APIRouter(include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store"}


@router.get("/healthz")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


@router.get("/readyz")
async def readyz(rt: RuntimeDep) -> JSONResponse:
    max_age = rt.settings.ready_worker_max_age_s
    readiness = await check_readiness(rt.db, rt.redis, worker_max_age=timedelta(seconds=max_age) if max_age else None)
    stalled = [c.age_s for c in readiness.checks if c.name == "worker" and not c.ok and c.age_s is not None]
    if stalled:  # a worker that ran and stopped cannot send this alert itself: the probe that notices sends it
        await alerts.worker_stale(rt.db, rt.settings, age_s=stalled[0], max_age_s=max_age)
    body = {
        "status": "ready" if readiness.ready else "not_ready",
        "checks": {check.name: {"ok": check.ok, "detail": check.detail} for check in readiness.checks},
    }
    return JSONResponse(body, status_code=200 if readiness.ready else 503, headers=NO_STORE)
