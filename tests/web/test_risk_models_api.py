"""The learned models under the admin API: listed with their later-period metrics, shown with their score
distributions, promoted by a person (audited, the same rules as `kaquan risk promote`)."""

import httpx
from sqlalchemy import update
from tests.support.http import the_error
from tests.support.identity import HeadersFor
from tests.support.risk_history import given_two_models

from kaquan.audit import service as audit
from kaquan.risk import RiskContext
from kaquan.risk.models import RiskModel
from kaquan.runtime import Runtime


async def test_the_models_are_listed_newest_first_with_their_metrics_and_status(
    rt: Runtime, client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    await given_two_models(rt)
    listed = await client.get("/admin/api/risk/models", headers=await headers_for("support"))

    assert listed.status_code == 200
    shadow, active = listed.json()
    assert (shadow["version"], shadow["status"], shadow["trained_by"]) == (2, "shadow", "worker")
    assert (active["version"], active["status"], active["promoted_by"]) == (1, "active", "alice")
    for model in (shadow, active):
        metrics = model["metrics"]
        assert 0.5 < metrics["auc"] <= 1 and 0 <= metrics["precision"] <= 1 and 0 <= metrics["recall"] <= 1
        assert metrics["test_rows"] > 0 and metrics["test_from"]
        assert model["trained_at"]


async def test_a_model_is_shown_with_its_held_out_and_recent_score_distributions(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await given_two_models(rt)
    shown = (await client.get("/admin/api/risk/models/1", headers=admin_headers)).json()

    assert shown["version"] == 1 and shown["status"] == "active"
    assert "ip.orders_1h" in shown["features"] and shown["trees"] > 0
    held_out = shown["held_out_scores"]
    assert [band["band"] for band in held_out][:2] == ["0–9", "10–19"] and held_out[-1]["band"] == "90–100"
    assert sum(band["count"] for band in held_out) == shown["metrics"]["test_rows"]
    assert sum(band["count"] for band in shown["recent_scores"]) == 6  # the six decisions it scored
    shadow = (await client.get("/admin/api/risk/models/2", headers=admin_headers)).json()
    assert sum(band["count"] for band in shadow["recent_scores"]) == 6


async def test_an_operator_promotes_the_shadow_model_and_the_active_one_retires_audited(
    rt: Runtime, client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    await given_two_models(rt)
    operator = await headers_for("operator", username="olga")

    promoted = await client.post("/admin/api/risk/models/2/promote", headers=operator)

    assert promoted.status_code == 200, promoted.text
    body = promoted.json()
    assert (body["version"], body["status"], body["retired"]) == (2, "active", 1)
    assert body["promoted_by"].startswith("olga ")  # the user and the token they acted with
    statuses = {
        m["version"]: m["status"] for m in (await client.get("/admin/api/risk/models", headers=operator)).json()
    }
    assert statuses == {2: "active", 1: "retired"}
    decision = await rt.risk.decide(RiskContext("shop.order", ip="203.0.113.9", submit_ms=300))
    assert any(reason.startswith("model:v2:") for reason in decision.reasons)  # this process uses it at once
    async with rt.db.read() as session:
        [entry] = [
            e for e in await audit.recent(session) if e.action == "risk.model_promoted" and e.actor.startswith("olga")
        ]
    assert (entry.before, entry.after, entry.target) == ({"active": 1}, {"active": 2}, "risk_model:2")
    retired = (await client.get("/admin/api/risk/models/1", headers=operator)).json()
    assert retired["status"] == "retired" and retired["recent_scores"] is None


async def test_an_unknown_an_active_or_an_unloadable_model_is_refused_and_nothing_changes(
    rt: Runtime, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await given_two_models(rt)
    the_error(await client.get("/admin/api/risk/models/9", headers=admin_headers), 404, "risk_model_not_found")
    missing = await client.post("/admin/api/risk/models/9/promote", headers=admin_headers)
    assert the_error(missing, 404, "risk_model_not_found") == {"version": 9}
    active = await client.post("/admin/api/risk/models/1/promote", headers=admin_headers)
    assert the_error(active, 409, "risk_model_not_promotable") == {"version": 1, "status": "active"}
    async with rt.db.transaction() as session:
        await session.execute(update(RiskModel).where(RiskModel.version == 2).values(trees=[[0, "x", 2, True, 1.0]]))

    unloadable = await client.post("/admin/api/risk/models/2/promote", headers=admin_headers)

    details = the_error(unloadable, 409, "risk_model_unloadable")
    assert details["version"] == 2 and details["why"]
    statuses = {
        m["version"]: m["status"] for m in (await client.get("/admin/api/risk/models", headers=admin_headers)).json()
    }
    assert statuses == {2: "shadow", 1: "active"}
    async with rt.db.read() as session:
        assert not [
            e for e in await audit.recent(session) if e.action == "risk.model_promoted" and e.after == {"active": 2}
        ]
    assert (await client.get("/admin/api/risk/models/2", headers=admin_headers)).status_code == 200


async def test_reading_needs_risk_read_and_promoting_risk_write(
    rt: Runtime, client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    await given_two_models(rt)
    finance = await headers_for("finance")
    support = await headers_for("support")

    assert the_error(await client.get("/admin/api/risk/models", headers=finance), 403, "forbidden") is not None
    assert (await client.get("/admin/api/risk/models/1", headers=support)).status_code == 200
    the_error(await client.post("/admin/api/risk/models/2/promote", headers=support), 403, "forbidden")
    assert (await client.get("/admin/api/risk/models/2", headers=support)).json()["status"] == "shadow"
