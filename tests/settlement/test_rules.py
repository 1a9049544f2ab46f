"""Settlement rules: versions in force from a date, every change audited, bad rules refused before anything."""

from datetime import date

import pytest
from tests.support.settlement import TIERS, agent_buys, at_local, given_rule, given_selling_agent, run

from kaquan import settlement
from kaquan.audit import service as audit
from kaquan.runtime import Runtime


async def test_a_run_applies_the_rule_version_in_force_on_its_first_day(rt: Runtime) -> None:
    at_local(2026, 9, 20)
    agent, sku = await given_selling_agent(rt, price_minor=1_000_000)
    await given_rule(rt, "agent:A001", tiers=TIERS)
    await given_rule(rt, "agent:A001", tiers=(settlement.Tier(0, 300),), effective_from=date(2026, 11, 1))
    at_local(2026, 10, 10)
    await agent_buys(rt, agent, sku, 1, "OCT")
    at_local(2026, 11, 10)
    await agent_buys(rt, agent, sku, 1, "NOV")
    at_local(2026, 12, 2)

    october = settlement.figures_of((await run(rt, "agent:A001", "2026-10-01..2026-10-31")).figures)
    november = settlement.figures_of((await run(rt, "agent:A001", "2026-11-01..2026-11-30")).figures)

    assert (october.tier_rate_bp, october.commission) == (100, 10_000)
    assert (november.tier_rate_bp, november.commission) == (300, 30_000)
    async with rt.db.read() as session:
        changes = await audit.search(session, audit.AuditFilter(action="settlement.rule_set", target="agent:A001"))
    assert len(changes) == 2
    assert changes[0].before is not None and changes[0].before["tiers"][0] == {
        "threshold_minor": 1_000_000,
        "rate_bp": 100,
    }
    assert changes[0].after is not None and changes[0].after["effective_from"] == "2026-11-01"


async def test_a_period_before_any_rule_has_no_rule(rt: Runtime) -> None:
    at_local(2026, 9, 20)
    await given_selling_agent(rt)
    await given_rule(rt, "agent:A001", effective_from=date(2026, 11, 1))
    at_local(2026, 12, 2)

    with pytest.raises(settlement.NoRule):
        await run(rt, "agent:A001", "2026-10-01..2026-10-31")


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        ({"fee_rate_bp": -1}, "fee_rate_bp"),
        ({"tiers": (settlement.Tier(1_000_000, 100), settlement.Tier(1_000_000, 200))}, "tiers"),
        ({"tiers": (settlement.Tier(1_000_000, -100),)}, "tiers"),
        ({"minimum_payout_minor": -1}, "minimum_payout_minor"),
        ({"hold_days": -1}, "hold_days"),
        ({"cycle": "yearly"}, "cycle"),
        ({"currency": "USD"}, "currency"),  # the agent trades in CNY
    ],
)
async def test_a_rule_that_cannot_apply_is_refused_naming_its_field(
    rt: Runtime, terms: dict[str, object], field: str
) -> None:
    await given_selling_agent(rt)

    with pytest.raises(settlement.InvalidRule) as refused:
        await given_rule(rt, "agent:A001", **terms)

    assert refused.value.details["field"] == field
    async with rt.db.read() as session:
        assert await settlement.rules_of(session, "agent:A001") == []


async def test_two_versions_on_one_date_are_refused(rt: Runtime) -> None:
    await given_selling_agent(rt)
    await given_rule(rt, "agent:A001")

    with pytest.raises(settlement.InvalidRule):
        await given_rule(rt, "agent:A001", fee_rate_bp=50)
