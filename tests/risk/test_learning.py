"""Learning from outcomes: labels from reviews, block lists and later evidence; a model measured on a LATER
period than it learned from; a new model in shadow until a person promotes it; rules alone when it fails."""

from datetime import datetime, timedelta

import pytest
from sqlalchemy import insert, select, update
from tests.support.risk_history import given_recorded, history

from kaquan.audit import service as audit
from kaquan.bench.risk import planted
from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.risk import Evidence, RiskContext, RiskEngine, learning, lists, rules
from kaquan.risk.errors import ModelNotFound, ModelNotPromotable, NotEnoughHistory
from kaquan.risk.expressions import Value
from kaquan.risk.learning import Example
from kaquan.risk.models import RiskDecision, RiskModel
from kaquan.risk.scoring import TreeModel, UnloadableModel

# a request that fits the planted pattern: a fresh device submitting fast from a busy address
ABUSIVE: dict[str, Value] = {"device.new": True, "page.submit_ms": 400, "ip.orders_1h": 12}
ORDINARY: dict[str, Value] = {"device.new": False, "page.submit_ms": 20_000, "ip.orders_1h": 1}


def test_a_model_finds_the_planted_pattern_in_a_later_period_it_never_saw() -> None:
    examples = history(3000)
    fitted = learning.fit(examples, seed=1)
    metrics = fitted.metrics
    assert metrics["auc"] > 0.85
    assert metrics["recall"] > 0.5 and metrics["precision"] > 0.5
    assert metrics["train_rows"] + metrics["test_rows"] == len(examples)
    trained_on = sorted(example.at for example in examples)[: metrics["train_rows"]]
    tested_on = sorted(example.at for example in examples)[metrics["train_rows"] :]
    assert max(trained_on) < min(tested_on)  # a time split: every test row is later than every training row
    assert datetime.fromisoformat(metrics["test_from"]) == min(tested_on)
    model = TreeModel(1, fitted.feature_names, fitted.trees)
    assert model.probability(ABUSIVE) > 0.6 > 0.25 > model.probability(ORDINARY)


def test_the_same_history_and_seed_give_the_same_model() -> None:
    examples = history(1500, seed=5)
    assert learning.fit(examples, seed=2).trees == learning.fit(examples, seed=2).trees


def test_a_model_without_enough_history_or_without_both_kinds_is_refused() -> None:
    with pytest.raises(NotEnoughHistory):
        learning.fit(history(100))
    honest = [Example(example.at, example.features, False) for example in history(1000)]
    with pytest.raises(NotEnoughHistory, match="both kinds"):
        learning.fit(honest)


def test_the_area_under_the_curve_counts_ties_as_half() -> None:
    assert learning.auc([True, False], [0.9, 0.1]) == 1.0
    assert learning.auc([True, False], [0.1, 0.9]) == 0.0
    assert learning.auc([True, False, True, False], [0.5, 0.5, 0.5, 0.5]) == 0.5


@pytest.mark.parametrize(
    "trees",
    [
        [],
        [[0, 1.0, 2, True, 1.0]],  # a split without its right branch
        [[99, 1.0, 2, True, 1.0, 2.0]],  # reads a feature the model does not have
        [[0, "1.0", 2, True, 1.0, 2.0]],  # a threshold that is text
        [[0, 1.0, 7, True, 1.0, 2.0]],  # an unknown missing-value rule
        [float("inf")],
        [{"__class__": "os.system"}],
    ],
)
def test_a_stored_model_of_any_other_shape_is_refused(trees: list[object]) -> None:
    with pytest.raises(UnloadableModel):
        TreeModel(1, ["ip.orders_1m"], trees)


def test_a_split_sends_missing_values_the_default_way() -> None:
    # x <= 5 goes left (-1), else right (+1); a missing value goes the default way: right here
    model = TreeModel(1, ["ip.orders_1m"], [[0, 5.0, 2, False, -1.0, 1.0]])
    assert model.raw([3.0]) == -1.0
    assert model.raw([9.0]) == 1.0
    assert model.probability({}) == pytest.approx(1 / (1 + 2.718281828459045**-1))


async def test_labels_come_from_reviews_block_lists_and_later_evidence(db: Database) -> None:
    now = clock.now()

    def row(subject: str, hours_ago: float, label: str | None = None) -> dict[str, object]:
        return {
            "at": now - timedelta(hours=hours_ago),
            "action": "shop.order",
            "subject": subject,
            "outcome": "approve",
            "score": 0,
            "reasons": [],
            "features": {"ip.orders_1m": 1},
            "label": label,
        }

    rows = [
        row("ip:203.0.113.1", 5, "fraud"),  # a reviewer said fraud
        row("ip:203.0.113.2", 5),  # block-listed later: confirmed abuse
        row("ip:203.0.113.3", 5),  # its order was charged back
        row("ip:203.0.113.3", 24 * 9),  # the same subject, long before: not named by the evidence
        row("ip:203.0.113.2", 4, "legit"),  # a reviewer's legit wins over the block list
        row("ip:203.0.113.4", 5),  # nothing known: legitimate
    ]
    async with db.transaction() as session:
        await session.execute(insert(RiskDecision.__table__), rows)  # type: ignore[arg-type]
        await lists.add(session, "ip", "203.0.113.2", "block", note="farm", actor="test")
    evidence = [Evidence("ip:203.0.113.3", now - timedelta(hours=5, minutes=1), "chargeback")]
    async with db.read() as session:
        labelled = await learning.labelled_history(session, evidence)
    assert [example.fraud for example in labelled] == [False, True, True, True, False, False]


async def test_a_new_model_runs_in_shadow_until_a_person_promotes_it(db: Database, engine: RiskEngine) -> None:
    await given_recorded(db, history(1500))
    first = await learning.train(db, [], actor="alice", seed=1)
    assert (first.version, first.status) == (1, "shadow")
    assert first.metrics["auc"] > 0.8

    engine.invalidate()
    shadowed = await engine.decide(RiskContext("shop.order", ip="203.0.113.9", submit_ms=300))
    assert shadowed.shadow_score is not None and shadowed.model_score is None
    assert not any(reason.startswith("model") for reason in shadowed.reasons)
    assert shadowed.score == 0  # the shadow does not act

    async with db.transaction() as session:
        await learning.promote(session, 1, actor="alice")
    engine.invalidate()
    acting = await engine.decide(RiskContext("shop.order", ip="203.0.113.9", submit_ms=300))
    [reason] = [reason for reason in acting.reasons if reason.startswith("model:")]
    points = int(reason.rpartition(":")[2])
    assert reason.startswith("model:v1:") and acting.score == points
    assert acting.model_score is not None and acting.shadow_score is None
    await engine.log.flush()
    async with db.read() as session:
        recorded = (await session.execute(select(RiskDecision).order_by(RiskDecision.id.desc()))).scalars().first()
        assert recorded is not None and recorded.model_score == acting.model_score
        [entry] = [e for e in await audit.recent(session) if e.action == "risk.model_promoted"]
        assert (entry.actor, entry.after) == ("alice", {"active": 1})

    second = await learning.train(db, [], actor="worker", seed=2)
    async with db.transaction() as session:
        with pytest.raises(ModelNotPromotable):
            await learning.promote(session, 1, actor="alice")
        with pytest.raises(ModelNotFound):
            await learning.promote(session, 99, actor="alice")
    async with db.transaction() as session:
        await learning.promote(session, second.version, actor="bob")
    async with db.read() as session:
        statuses = {model.version: model.status for model in await learning.all_models(session)}
    assert statuses == {1: "retired", 2: "active"}


async def test_a_model_that_cannot_load_leaves_the_rules_to_decide_and_says_so(
    db: Database, engine: RiskEngine
) -> None:
    await given_recorded(db, history(1500))
    await learning.train(db, [], actor="alice")
    async with db.transaction() as session:
        await learning.promote(session, 1, actor="alice")
        await session.execute(update(RiskModel).values(trees=[["not", "a", "tree"]]))
        await rules.add(session, name="fast", expression="page.submit_ms < 500", score=45, enabled=True, actor="test")
    engine.invalidate()
    decision = await engine.decide(RiskContext("shop.order", ip="203.0.113.9", submit_ms=300))
    assert decision.reasons == ("rule:fast", "model_fallback")
    assert (decision.outcome, decision.score, decision.model_score) == ("challenge", 45, None)


async def test_the_worker_retrains_into_shadow_when_the_newest_model_is_old(db: Database) -> None:
    await given_recorded(db, history(1500))

    async def nothing_learned() -> list[Evidence]:
        return []

    retrainer = learning.Retrainer(every_s=7 * 86400)
    assert await retrainer.run_due(db, nothing_learned) == 1
    assert await learning.Retrainer(every_s=7 * 86400).run_due(db, nothing_learned) == 0  # a fresh one is not due
    clock.travel(8 * 86400)
    assert await learning.Retrainer(every_s=7 * 86400).run_due(db, nothing_learned) == 1
    async with db.read() as session:
        assert [(m.version, m.status) for m in await learning.all_models(session)] == [(2, "shadow"), (1, "retired")]


def test_the_planted_pattern_is_what_the_synthetic_history_marks() -> None:
    assert planted(ABUSIVE) and not planted(ORDINARY)
