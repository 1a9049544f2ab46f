"""Operators' rules are saved only whole and valid, audited, and backtested on recorded decisions."""

import pytest
from sqlalchemy import func, select

from kaquan.audit.models import AuditEntry
from kaquan.kit.db import Database
from kaquan.kit.errors import BadInput, Conflict
from kaquan.risk import InvalidRule, RiskContext, RiskEngine, RuleNeedsConfirmation, lists, rules
from kaquan.risk.models import RiskListEntry, RiskRule


async def test_a_malformed_rule_is_refused_with_its_position_and_nothing_is_saved(db: Database) -> None:
    with pytest.raises(InvalidRule) as refused:
        async with db.transaction() as session:
            await rules.add(session, name="bad", expression="ip.orders_1m > > 5", score=10, actor="t")
    assert refused.value.details == {"position": 15, "column": 16}
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(RiskRule)) == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"actions": "shop.order,refund"}, "actions"),
        ({"outcome": "approve"}, "outcome"),
        ({"score": 101}, "score"),
        ({"score": 0}, "score"),
        ({"name": ""}, "name"),
    ],
)
async def test_a_rule_without_a_known_action_or_a_sane_effect_is_refused(
    db: Database, change: dict[str, object], field: str
) -> None:
    rule: dict[str, object] = {"name": "r", "expression": "order.quantity > 1", "score": 10} | change
    with pytest.raises(BadInput) as refused:
        async with db.transaction() as session:
            await rules.add(session, actor="t", **rule)  # type: ignore[arg-type]
    assert refused.value.details["field"] == field


async def test_rule_names_are_unique_and_every_change_is_audited(db: Database) -> None:
    async with db.transaction() as session:
        await rules.add(session, name="bulk", expression="order.quantity > 5", score=20, actor="alice")
        await rules.set_enabled(session, "bulk", True, actor="alice")
        await lists.add(session, "device", "a" * 24, "block", actor="alice")
        await lists.remove(session, "device", "a" * 24, actor="bob")
    with pytest.raises(Conflict):
        async with db.transaction() as session:
            await rules.add(session, name="bulk", expression="order.quantity > 6", score=20, actor="alice")
    async with db.read() as session:
        actions = list((await session.execute(select(AuditEntry.action).order_by(AuditEntry.id))).scalars())
        assert await session.scalar(select(func.count()).select_from(RiskListEntry)) == 0
    assert actions == ["risk.rule_added", "risk.rule_enabled", "risk.list_added", "risk.list_removed"]


async def test_list_values_are_normalized_or_refused(db: Database) -> None:
    assert lists.normalize("prefix", "10.1.2.3/24") == "10.1.2.0/24"
    assert lists.normalize("ip", " 2001:DB8::1 ") == "2001:db8::1"
    assert lists.normalize("contact", "Buyer@Example.com") == lists.normalize("contact", "buyer@example.com")
    with pytest.raises(BadInput):
        lists.normalize("ip", "10.1.2.300")
    with pytest.raises(BadInput):
        lists.normalize("cookie", "x")


async def test_a_backtest_counts_the_recorded_decisions_a_rule_would_have_hit(db: Database, engine: RiskEngine) -> None:
    for host in range(10):
        for _ in range(host % 3 + 1):  # hosts ending in 2, 5, 8 order three times
            await engine.decide(RiskContext("shop.order", ip=f"203.0.113.{host}", quantity=host))
    await engine.decide(RiskContext("flash.purchase", ip="198.51.100.1", quantity=50))
    await engine.log.flush()
    async with db.read() as session:
        every = await rules.backtest(session, "ip.orders_1m >= 3")
        shop_only = await rules.backtest(session, "order.quantity >= 8", actions="shop.order")
        recent = await rules.backtest(session, "order.quantity >= 0", last=5)
    assert (every.examined, every.hits, every.hits_by_outcome) == (20, 3, {"approve": 3})
    assert (shop_only.examined, shop_only.hits) == (19, 4)  # host 8 three times, host 9 once
    assert (recent.examined, recent.hits) == (5, 5)
    assert len(every.sample) == 3
    with pytest.raises(InvalidRule):
        async with db.read() as session:
            await rules.backtest(session, "ip.orders_1m >= ")


GUARD = rules.HonestGuard(decline_at=90, limit_bp=100)  # more than 1 % of last week's approved decisions


async def given_approved_orders(engine: RiskEngine, quantities: list[int]) -> None:
    for host, quantity in enumerate(quantities):
        await engine.decide(RiskContext("shop.order", ip=f"198.51.100.{host}", quantity=quantity))
    await engine.log.flush()


async def test_a_declining_rule_that_hits_too_many_honest_buyers_goes_on_only_when_confirmed(
    db: Database, engine: RiskEngine
) -> None:
    await given_approved_orders(engine, [1] * 98 + [9, 9])  # the rule would decline 2 of 100: over 1 %
    async with db.transaction() as session:
        await rules.add(session, name="bulk", expression="order.quantity > 5", outcome="decline", actor="alice")
    with pytest.raises(RuleNeedsConfirmation) as refused:
        async with db.transaction() as session:
            await rules.set_enabled(session, "bulk", True, actor="alice", guard=GUARD)
    assert refused.value.status == 409
    assert refused.value.details == {"rule": "bulk", "hits": 2, "examined": 100, "limit_bp": 100}
    with pytest.raises(RuleNeedsConfirmation):
        async with db.transaction() as session:
            await rules.add(
                session, name="bulk2", expression="order.quantity > 5", score=95, enabled=True, actor="a", guard=GUARD
            )
    async with db.read() as session:
        assert [(rule.name, rule.enabled) for rule in await rules.all_rules(session)] == [("bulk", False)]

    async with db.transaction() as session:
        confirmed = rules.HonestGuard(decline_at=90, limit_bp=100, confirmed=True)
        await rules.set_enabled(session, "bulk", True, actor="alice", guard=confirmed)
    async with db.read() as session:
        assert (await rules.get(session, "bulk")).enabled


async def test_a_rule_within_the_share_or_one_that_does_not_decline_goes_on_without_confirmation(
    db: Database, engine: RiskEngine
) -> None:
    await given_approved_orders(engine, [1] * 199 + [9])  # 1 of 200 is 0.5 %: within 1 %
    async with db.transaction() as session:
        await rules.add(
            session,
            name="rare",
            expression="order.quantity > 5",
            outcome="decline",
            enabled=True,
            actor="a",
            guard=GUARD,
        )
        await rules.add(
            session,
            name="wide",
            expression="order.quantity >= 1",
            outcome="challenge",
            enabled=True,
            actor="a",
            guard=GUARD,
        )
        await rules.add(
            session, name="nudge", expression="order.quantity >= 1", score=30, enabled=True, actor="a", guard=GUARD
        )
    async with db.read() as session:
        assert [rule.enabled for rule in await rules.all_rules(session)] == [True, True, True]
