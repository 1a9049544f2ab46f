"""Risk models: each learned model's metrics on its held-out later period, and how the active and shadow
models scored recent decisions (docs/risk.md). Promoting one is a person's act on the CLI or the
admin API (audited)."""

from typing import Annotated, Any

from fastapi import Request
from fastapi.responses import Response

from kaquan.identity.permissions import Permission
from kaquan.risk import learning
from kaquan.web.console.rendering import console_router, page
from kaquan.web.deps import Principal, RuntimeDep, require

router = console_router()
RiskRead = Annotated[Principal, require(Permission.RISK_READ)]
RECENT = 5000


def _bands(counts: list[int]) -> list[dict[str, Any]]:
    width = 100 // len(counts)
    most = max(counts) or 1
    return [
        {"band": f"{i * width}–{(i + 1) * width - 1 if i < len(counts) - 1 else 100}", "count": count,
         "share": round(100 * count / most)}
        for i, count in enumerate(counts)
    ]  # fmt: skip


@router.get("/admin/risk/models")
async def risk_models_page(request: Request, rt: RuntimeDep, admin: RiskRead) -> Response:
    async with rt.db.read() as session:
        models = [learning.describe(model) for model in await learning.all_models(session)]
        scored = await learning.score_distribution(session, last=RECENT)
    distributions = [
        {"which": which, "count": sum(counts), "bands": _bands(counts)}
        for which, counts in scored.items()
        if sum(counts)
    ]
    return page(request, admin, "risk_models.html", {"models": models, "distributions": distributions})
