"""The decision point: lists first, then the operators' rules, a score that maps to an outcome, and a
record of every decision."""

from sqlalchemy import select

from kaquan.kit.db import Database
from kaquan.risk import RiskContext, RiskEngine, lists, rules
from kaquan.risk.models import RiskDecision

SHOP = RiskContext("shop.order", ip="203.0.113.7", device="tok-" + "a" * 30, contact="13800000000", sku="HOT-1")


async def given_rule(
    db: Database, engine: RiskEngine, expression: str, *, score: int = 0, outcome: str | None = None
) -> None:
    async with db.transaction() as session:
        await rules.add(
            session,
            name=expression[:80],
            expression=expression,
            score=score,
            outcome=outcome,
            enabled=True,
            actor="test",
        )
    engine.invalidate()


async def test_without_rules_every_request_is_approved_and_recorded(db: Database, engine: RiskEngine) -> None:
    decision = await engine.decide(SHOP)
    assert (decision.outcome, decision.score, decision.reasons) == ("approve", 0, ())
    await engine.log.flush()
    async with db.read() as session:
        [row] = (await session.execute(select(RiskDecision))).scalars()
    assert (row.action, row.outcome, row.score) == ("shop.order", "approve", 0)
    assert row.subject.startswith("contact:") and "13800000000" not in row.subject
    assert row.features["ip.orders_1m"] == 1


async def test_scores_add_up_to_challenge_review_and_decline(db: Database, engine: RiskEngine) -> None:
    await given_rule(db, engine, "ip.orders_1m > 1", score=40)
    await given_rule(db, engine, "ip.orders_1m > 2", score=30)
    await given_rule(db, engine, "ip.orders_1m > 3", score=30)
    outcomes = [(await engine.decide(SHOP)).outcome for _ in range(4)]
    assert outcomes == ["approve", "challenge", "review", "decline"]
    last = await engine.decide(SHOP)
    assert last.score == 100
    assert last.reasons == ("rule:ip.orders_1m > 1", "rule:ip.orders_1m > 2", "rule:ip.orders_1m > 3")


async def test_a_hard_outcome_wins_over_a_low_score_and_a_rule_applies_to_its_actions_only(
    db: Database, engine: RiskEngine
) -> None:
    async with db.transaction() as session:
        await rules.add(
            session, name="bulk", expression="order.quantity >= 10", actions="flash.purchase", outcome="decline",
            enabled=True, actor="test",
        )  # fmt: skip
    engine.invalidate()
    bulk_shop = RiskContext("shop.order", ip="203.0.113.7", quantity=10)
    bulk_flash = RiskContext("flash.purchase", ip="203.0.113.7", quantity=10)
    assert (await engine.decide(bulk_shop)).outcome == "approve"
    declined = await engine.decide(bulk_flash)
    assert (declined.outcome, declined.score, declined.reasons) == ("decline", 0, ("rule:bulk",))


async def test_a_disabled_rule_does_nothing(db: Database, engine: RiskEngine) -> None:
    await given_rule(db, engine, "order.quantity >= 1", outcome="decline")
    async with db.transaction() as session:
        await rules.set_enabled(session, "order.quantity >= 1", False, actor="test")
    engine.invalidate()
    assert (await engine.decide(SHOP)).outcome == "approve"


async def test_block_lists_decline_and_allow_lists_skip_the_rules(db: Database, engine: RiskEngine) -> None:
    await given_rule(db, engine, "order.quantity >= 1", outcome="decline")
    async with db.transaction() as session:
        await lists.add(session, "contact", "13800000000", "allow", note="our own test buyer", actor="test")
        await lists.add(session, "prefix", "198.51.100.77/24", "block", actor="test")
    engine.invalidate()
    allowed = await engine.decide(SHOP)
    assert (allowed.outcome, allowed.reasons) == ("approve", ("list:allow:contact",))
    blocked = await engine.decide(RiskContext("shop.order", ip="198.51.100.3", contact="13800000000"))
    assert (blocked.outcome, blocked.score, blocked.reasons) == ("decline", 100, ("list:block:prefix",))
    stranger = await engine.decide(RiskContext("shop.order", ip="203.0.113.8"))
    assert stranger.outcome == "decline"


async def test_rules_and_lists_changed_elsewhere_apply_after_the_refresh(db: Database, engine: RiskEngine) -> None:
    assert (await engine.decide(SHOP)).outcome == "approve"
    async with db.transaction() as session:
        await lists.add(session, "ip", "203.0.113.7", "block", actor="another process")
    assert (await engine.decide(SHOP)).outcome == "approve"  # this process has not reloaded yet
    engine.invalidate()
    assert (await engine.decide(SHOP)).outcome == "decline"
