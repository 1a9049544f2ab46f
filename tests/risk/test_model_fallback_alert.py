"""A corrupt or missing acting model: every decision falls back to the rules (never a 500), and the operator hears
of it by e-mail and the signed webhook, once per interval, through the outbox."""

import json

import httpx
import pytest
from sqlalchemy import delete, text, update
from tests.support.alerting import alerts_to
from tests.support.builders import given_sku_with_codes
from tests.support.callback_receiver import Receiver
from tests.support.console import console_sign_in
from tests.support.identity import given_user
from tests.support.risk_history import given_recorded, history
from tests.support.smtp import Mailbox

from kaquan.kit import clock, outbox
from kaquan.kit.config import Settings
from kaquan.risk import RiskContext, learning, recent
from kaquan.risk.errors import ModelUnloadable
from kaquan.risk.models import RiskModel
from kaquan.runtime import Runtime


@pytest.fixture
def settings(settings: Settings, smtp: Mailbox, hook: Receiver) -> Settings:
    return alerts_to(settings, smtp, hook, operators="ops@shop.test")


async def given_active_model(rt: Runtime) -> None:
    await given_recorded(rt.db, history(1200, seed=4))
    await learning.train(rt.db, [], actor="alice", seed=1)
    async with rt.db.transaction() as session:
        await learning.promote(session, 1, actor="alice")


async def corrupt(rt: Runtime) -> None:
    """The stored trees cut short, as a torn write or a bad restore leaves them: JSON that no longer parses where
    the column is text (SQLite), a tree without its branches where the database checks JSON (PostgreSQL)."""
    async with rt.db.transaction() as session:
        if not rt.db.is_postgresql:
            await session.execute(
                text("UPDATE risk_models SET trees = '[[3, 0.5, 2, true, [1, 2.0, 0' WHERE version = 1")
            )
        else:
            await session.execute(update(RiskModel).where(RiskModel.version == 1).values(trees=[[3, 0.5, 2, True]]))


async def worker_pass(rt: Runtime) -> None:
    await outbox.run_due(rt.db)


async def test_a_corrupt_acting_model_leaves_the_rules_to_decide_and_alerts_the_operator_once(
    rt: Runtime, client: httpx.AsyncClient, smtp: Mailbox, hook: Receiver, settings: Settings
) -> None:
    await given_active_model(rt)
    await corrupt(rt)
    rt.risk.invalidate()

    decision = await rt.risk.decide(RiskContext("shop.order", ip="203.0.113.9", submit_ms=300))
    for _ in range(3):  # every reload sees it again; the operator hears once
        rt.risk.invalidate()
        await rt.risk.decide(RiskContext("shop.order", ip="203.0.113.10"))
    await worker_pass(rt)

    assert decision.outcome == "approve" and "model_fallback" in decision.reasons and decision.model_score is None
    [mail] = smtp.wait_for(1)
    assert mail["To"] == "ops@shop.test"
    assert mail["Subject"].endswith("风控模型 v1 无法加载，风控暂由规则单独决定")
    assert "kaquan risk promote" in mail.get_content()
    [posted] = hook.requests
    body = json.loads(posted.body)
    assert (body["kind"], body["facts"]["version"]) == ("risk_model_fallback", 1)
    assert body["facts"]["reason"] and hook.bad_signatures == []
    await given_user(rt, "olga", "operator")
    console = await console_sign_in(client, "olga")
    page = await console.get("/admin/risk/models")  # still listed: the page never reads a model's trees
    assert page.status_code == 200 and 'data-version="1" data-status="active"' in page.text


async def test_the_alert_comes_again_after_the_interval_while_the_model_stays_broken(
    rt: Runtime, smtp: Mailbox, settings: Settings
) -> None:
    await given_active_model(rt)
    await corrupt(rt)
    rt.risk.invalidate()
    await rt.risk.decide(RiskContext("shop.order", ip="203.0.113.9"))
    await worker_pass(rt)
    smtp.wait_for(1)

    clock.travel(settings.alert_interval_minutes * 60 + 1)
    rt.risk.invalidate()
    await rt.risk.decide(RiskContext("shop.order", ip="203.0.113.9"))
    await worker_pass(rt)

    assert len(smtp.wait_for(2)) == 2


async def test_an_acting_model_whose_row_is_gone_is_alerted_as_missing(rt: Runtime, hook: Receiver) -> None:
    await given_active_model(rt)
    rt.risk.invalidate()
    await rt.risk.decide(RiskContext("shop.order", ip="203.0.113.9"))
    async with rt.db.transaction() as session:
        await session.execute(delete(RiskModel).where(RiskModel.version == 1))
        session.add(
            RiskModel(
                version=1,
                status="active",
                trained_at=clock.now(),
                trained_by="restore",
                feature_names=[],
                metrics={},
                trees=[],
            )
        )
    rt.risk.invalidate()

    decision = await rt.risk.decide(RiskContext("shop.order", ip="203.0.113.9"))
    await worker_pass(rt)

    assert "model_fallback" in decision.reasons
    [posted] = hook.requests
    assert json.loads(posted.body)["facts"]["version"] == 1


async def test_a_shop_order_is_placed_while_the_model_is_corrupt(rt: Runtime, client: httpx.AsyncClient) -> None:
    sku = await given_sku_with_codes(rt, 3)
    await given_active_model(rt)
    await corrupt(rt)
    rt.risk.invalidate()

    placed = await client.post(
        "/api/orders",
        json={"sku": sku.code, "quantity": 1},
        headers={"X-Client-Token": "c" * 32, "Idempotency-Key": "fallback-1"},
    )

    assert placed.status_code == 201
    await rt.risk.log.flush()
    async with rt.db.read() as session:
        [decision] = await recent(session, subject=None, outcome=None, limit=1)
    assert "model_fallback" in decision.reasons


async def test_a_corrupt_model_cannot_be_promoted(rt: Runtime) -> None:
    await given_recorded(rt.db, history(1200, seed=4))
    await learning.train(rt.db, [], actor="alice", seed=1)
    await corrupt(rt)
    async with rt.db.transaction() as session:
        with pytest.raises(ModelUnloadable):
            await learning.promote(session, 1, actor="alice")
    async with rt.db.read() as session:
        assert (await learning.one_model(session, 1)).status == "shadow"
