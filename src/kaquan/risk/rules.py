"""Operators' rules: saved only when they parse, switched on and off without a deploy, backtested first.

A rule is an expression over the features (`ip.orders_1m > 5 and sku.high_demand`), the actions it
applies to (`*` or a comma-separated list), and its effect: a score added to the decision's (negative
to vouch for something), or a hard outcome (challenge, review, decline) whatever the score.
Every change is audited. `backtest` runs an expression over the features recorded with recent
decisions, so an operator sees how much it would have hit before switching it on; and a rule that
declines is switched on only with confirmation when it would have declined more than the merchant's
share (`HonestGuard`) of the last week's approved decisions.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.audit import service as audit
from kaquan.kit import clock
from kaquan.kit.errors import BadInput, Conflict
from kaquan.risk import expressions
from kaquan.risk.errors import RuleNeedsConfirmation, RuleNotFound
from kaquan.risk.features import ACTIONS, FEATURES
from kaquan.risk.models import RiskDecision, RiskRule

RULE_OUTCOMES = ("challenge", "review", "decline")
MAX_BACKTEST = 100_000
SAMPLE = 20
HONEST_LOOK_BACK = timedelta(days=7)


@dataclass(frozen=True)
class HonestGuard:
    """When switching a rule on needs confirmation: the rule declines (its outcome, or a score at the decline
    line on its own) and would have hit more than `limit_bp` basis points of the approved decisions of the
    last week that nobody labelled fraud. The admin API and the CLI pass one; test set-ups pass none."""

    decline_at: int
    limit_bp: int
    confirmed: bool = False

    def declines(self, rule: RiskRule) -> bool:
        return rule.outcome == "decline" or (rule.outcome is None and rule.score >= self.decline_at)


@dataclass(frozen=True)
class CompiledRule:
    name: str
    tree: expressions.Node
    actions: frozenset[str] | None  # None: every action
    score: int
    outcome: str | None

    def applies_to(self, action: str) -> bool:
        return self.actions is None or action in self.actions


def compile_expression(expression: str) -> expressions.Node:
    """The expression's tree, or InvalidRule (400 `invalid_rule` with its position)."""
    return expressions.parse(expression, FEATURES)


def parse_actions(actions: str) -> frozenset[str] | None:
    names = {part.strip() for part in actions.split(",") if part.strip()}
    if not names or names == {"*"}:
        return None
    unknown = sorted(names - set(ACTIONS))
    if unknown:
        raise BadInput(f"unknown action {unknown[0]!r}; one of * {' '.join(ACTIONS)}", field="actions")
    return frozenset(names)


def compiled(rule: RiskRule) -> CompiledRule:
    return CompiledRule(
        rule.name, compile_expression(rule.expression), parse_actions(rule.actions), rule.score, rule.outcome
    )


def describe(rule: RiskRule) -> dict[str, object]:
    return {
        "name": rule.name,
        "expression": rule.expression,
        "actions": rule.actions,
        "score": rule.score,
        "outcome": rule.outcome,
        "enabled": rule.enabled,
    }


def _check_effect(score: int, outcome: str | None) -> None:
    if outcome is not None and outcome not in RULE_OUTCOMES:
        raise BadInput(f"a rule's outcome is one of {', '.join(RULE_OUTCOMES)}", field="outcome")
    if not -100 <= score <= 100:
        raise BadInput("a rule's score is between -100 and 100", field="score")
    if outcome is None and score == 0:
        raise BadInput("a rule needs a score or an outcome", field="score")


async def add(
    session: AsyncSession,
    *,
    name: str,
    expression: str,
    actions: str = "*",
    score: int = 0,
    outcome: str | None = None,
    enabled: bool = False,
    actor: str,
    guard: HonestGuard | None = None,
) -> RiskRule:
    """Save a new rule (off unless `enabled`); nothing is saved if any part is wrong, or if it would go on
    declining too many honest buyers unconfirmed (`guard`)."""
    name = name.strip()
    if not 1 <= len(name) <= 80:
        raise BadInput("a rule's name is 1 to 80 characters", field="name")
    compile_expression(expression)
    parse_actions(actions)
    _check_effect(score, outcome)
    now = clock.now()
    rule = RiskRule(
        name=name,
        expression=expression,
        actions=actions.strip() or "*",
        score=score,
        outcome=outcome,
        enabled=enabled,
        created_by=actor[:120],
        created_at=now,
        updated_at=now,
    )
    if enabled and guard is not None:
        await _check_honest_declines(session, rule, guard)
    try:
        async with session.begin_nested():
            session.add(rule)
            await session.flush()
    except IntegrityError:
        raise Conflict(f"a risk rule named {name!r} exists", rule=name) from None
    await audit.record(session, actor, "risk.rule_added", target=f"risk_rule:{name}", after=describe(rule))
    return rule


async def get(session: AsyncSession, name: str) -> RiskRule:
    rule = (await session.execute(select(RiskRule).where(RiskRule.name == name))).scalar_one_or_none()
    if rule is None:
        raise RuleNotFound(name)
    return rule


async def set_enabled(
    session: AsyncSession, name: str, enabled: bool, *, actor: str, guard: HonestGuard | None = None
) -> RiskRule:
    rule = await get(session, name)
    if enabled and not rule.enabled and guard is not None:
        await _check_honest_declines(session, rule, guard)
    before = describe(rule)
    rule.enabled = enabled
    rule.updated_at = clock.now()
    await session.flush()
    action = "risk.rule_enabled" if enabled else "risk.rule_disabled"
    await audit.record(session, actor, action, target=f"risk_rule:{name}", before=before, after=describe(rule))
    return rule


async def all_rules(session: AsyncSession) -> list[RiskRule]:
    return list((await session.execute(select(RiskRule).order_by(RiskRule.id))).scalars())


async def active(session: AsyncSession) -> list[CompiledRule]:
    """The enabled rules, compiled (the decision point reloads these every few seconds)."""
    stmt = select(RiskRule).where(RiskRule.enabled.is_(True)).order_by(RiskRule.id)
    return [compiled(rule) for rule in (await session.execute(stmt)).scalars()]


@dataclass(frozen=True)
class Backtest:
    """How an expression would have fared on the last `examined` recorded decisions of its actions."""

    examined: int
    hits: int
    hits_by_outcome: dict[str, int]  # what those decisions actually answered
    sample: list[int]  # ids of a few decisions it hits

    @property
    def share(self) -> float:
        return self.hits / self.examined if self.examined else 0.0


async def backtest(session: AsyncSession, expression: str, *, actions: str = "*", last: int = 1000) -> Backtest:
    if not 1 <= last <= MAX_BACKTEST:
        raise BadInput(f"a backtest reads 1 to {MAX_BACKTEST} decisions", field="last")
    tree = compile_expression(expression)
    wanted = parse_actions(actions)
    stmt = select(RiskDecision.id, RiskDecision.outcome, RiskDecision.features).order_by(RiskDecision.id.desc())
    if wanted is not None:
        stmt = stmt.where(RiskDecision.action.in_(sorted(wanted)))
    examined = 0
    outcomes: Counter[str] = Counter()
    sample: list[int] = []
    for decision_id, outcome, features in (await session.execute(stmt.limit(last))).all():
        examined += 1
        if expressions.holds(tree, features):
            outcomes[outcome] += 1
            if len(sample) < SAMPLE:
                sample.append(decision_id)
    return Backtest(examined, sum(outcomes.values()), dict(outcomes), sample)


async def _check_honest_declines(session: AsyncSession, rule: RiskRule, guard: HonestGuard) -> None:
    """RuleNeedsConfirmation (409) when the guard asks for confirmation and was not given it."""
    if guard.confirmed or not guard.declines(rule):
        return
    tree = compile_expression(rule.expression)
    wanted = parse_actions(rule.actions)
    stmt = select(RiskDecision.features).where(
        RiskDecision.at >= clock.now() - HONEST_LOOK_BACK,
        RiskDecision.outcome == "approve",
        (RiskDecision.label.is_(None)) | (RiskDecision.label != "fraud"),
    )
    if wanted is not None:
        stmt = stmt.where(RiskDecision.action.in_(sorted(wanted)))
    examined = hits = 0
    for (features,) in (await session.execute(stmt.order_by(RiskDecision.id.desc()).limit(MAX_BACKTEST))).all():
        examined += 1
        hits += expressions.holds(tree, features)
    if hits * 10_000 > guard.limit_bp * examined:
        raise RuleNeedsConfirmation(rule.name, hits=hits, examined=examined, limit_bp=guard.limit_bp)
