"""The one decision point: `RiskEngine.decide(context)` → approve, challenge, review or decline.

A decision costs one round trip to count in Redis (none without Redis: `counters.DatabaseCounters`
writes behind) and nothing else on the way: rules and lists are held in memory and reloaded every
`KAQUAN_RISK_REFRESH_S` seconds (at once in the process that changed them), and the decision is
recorded behind the request (`recording.DecisionLog`). Only a request that carries a challenge's
solution spends one more trip, to mark the solution used.

The score is the sum of the hit rules' scores and the active learned model's points (its probability
times `KAQUAN_RISK_MODEL_WEIGHT`; `risk.learning`), clamped to 0–100; it maps to an outcome by the
thresholds `KAQUAN_RISK_CHALLENGE_AT` < `..._REVIEW_AT` < `..._DECLINE_AT`. A rule with a hard outcome
raises the outcome to at least that one. A block-listed subject is declined and an allow-listed one
approved before any rule runs. A challenged request (or one for review on a path that cannot hold it)
that carries a valid solution of a hard enough challenge, or a person's answer to an image captcha
(`risk.captcha`, for browsers without JavaScript), is approved, once.

A `review` answer on a path that can hold what it places (`RiskContext.can_hold`: shop orders) carries no
challenge: the caller places the order and holds it with `reviews.hold`, which writes the decision row in
the caller's transaction (its id is what a verdict labels), so that row is not buffered in the log.
"""

import asyncio
import logging
from dataclasses import dataclass, field, replace
from typing import Any

from kaquan.kit import alerts, clock
from kaquan.kit.config import Settings
from kaquan.kit.db import Database
from kaquan.risk import captcha, learning, lists, rules
from kaquan.risk.captcha import ImageCaptchas
from kaquan.risk.challenges import Challenge, ProofOfWork
from kaquan.risk.counters import VelocityCounters
from kaquan.risk.errors import ChallengeRequired, RiskDeclined
from kaquan.risk.expressions import Value, holds
from kaquan.risk.features import (
    COUNTED,
    COUNTED_BY_ACTION,
    FAILURES_BY_ACTION,
    RiskContext,
    counter_features,
    request_features,
)
from kaquan.risk.recording import DecisionLog

log = logging.getLogger(__name__)
SEVERITY = {"approve": 0, "challenge": 1, "review": 2, "decline": 3}
MAX_REASONS = 20


@dataclass(frozen=True)
class Decision:
    outcome: str  # approve | challenge | review | decline
    score: int
    reasons: tuple[str, ...]
    challenge: Challenge | None = None
    features: dict[str, Value] = field(default_factory=dict, repr=False)
    model_score: int | None = None  # the active model's 0–100, when one scored
    shadow_score: int | None = None  # the shadow model's, recorded only
    # The decision's row, for `reviews.hold` to write with the held order; None when the log records it.
    row: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def holds(self) -> bool:
        """The caller must place what was asked and hold it for review (`reviews.hold`)."""
        return self.row is not None

    def enforce(self) -> None:
        """Let an approved request on; refuse the others with the error their client needs."""
        if self.outcome == "decline":
            raise RiskDeclined()
        if self.challenge is not None:
            failed = next((r for r in self.reasons if r.startswith(("challenge_", "captcha_"))), None)
            raise ChallengeRequired(self.challenge.to_dict(), failed=failed)


@dataclass
class _Policy:
    rules: list[rules.CompiledRule]
    verdicts: dict[str, str]
    models: learning.Serving
    loaded_at: float


class RiskEngine:
    def __init__(
        self, db: Database, settings: Settings, counters: VelocityCounters, pow_: ProofOfWork, log_: DecisionLog
    ) -> None:
        self._db = db
        self._settings = settings
        self._counters = counters
        self._pow = pow_
        self.log = log_
        self._policy: _Policy | None = None
        self._loading: asyncio.Lock | None = None
        self._pinned: learning.Serving | None = None
        self._next_fallback_alert = float("-inf")
        self.captchas = ImageCaptchas(pow_, ttl_s=settings.risk_pow_ttl_s)

    def pin(self, models: learning.Serving) -> None:
        """Score with these models instead of the stored ones (benchmarks: the stored choice stays untouched)."""
        self._pinned = models
        self._policy = None

    def invalidate(self) -> None:
        """Reload rules and lists on the next decision (this process changed them)."""
        self._policy = None

    async def _current(self) -> _Policy:
        now = asyncio.get_running_loop().time()
        policy = self._policy
        if policy is not None and now - policy.loaded_at < self._settings.risk_refresh_s:
            return policy
        self._loading = self._loading or asyncio.Lock()
        async with self._loading:  # one reload at a time; the others wait for it instead of repeating it
            if self._policy is not None and self._policy is not policy:
                return self._policy
            async with self._db.read() as session:
                loaded = _Policy(
                    await rules.active(session),
                    await lists.verdicts(session),
                    self._pinned or await learning.serving(session, policy.models if policy else learning.NO_MODELS),
                    now,
                )
            self._policy = loaded
        if loaded.models.fallback:
            await self._alert_fallback(loaded.models)
        return loaded

    async def _alert_fallback(self, models: learning.Serving) -> None:
        """Tell the operator that the acting model cannot be loaded (`kit.alerts`, once per interval across the
        processes; this process tries at most once per interval). Whatever happens here, the decision goes on."""
        routing = alerts.routing()
        now = clock.now().timestamp()
        if not routing.channels or now < self._next_fallback_alert:
            return
        self._next_fallback_alert = now + routing.interval.total_seconds()
        facts = {"version": models.chosen, "reason": models.why}
        try:
            async with self._db.transaction() as session:
                await alerts.raise_alert(self._db, session, "risk_model_fallback", f"model:v{models.chosen}", facts)
        except Exception as exc:  # an alert that cannot be written must never fail the request deciding
            log.warning("risk model fallback alert not raised: %s", type(exc).__name__)

    def _bits(self, score: int) -> int:
        settings = self._settings
        span = max(1, 100 - settings.risk_challenge_at)
        extra = (settings.risk_pow_max_bits - settings.risk_pow_bits) * max(0, score - settings.risk_challenge_at)
        return min(settings.risk_pow_max_bits, settings.risk_pow_bits + round(extra / span))

    def _by_score(self, score: int) -> str:
        settings = self._settings
        if score >= settings.risk_decline_at:
            return "decline"
        if score >= settings.risk_review_at:
            return "review"
        if score >= settings.risk_challenge_at:
            return "challenge"
        return "approve"

    async def decide(self, context: RiskContext) -> Decision:
        if not self._settings.risk_enabled:
            return Decision("approve", 0, ("risk_off",))
        subjects = context.subjects()
        what = COUNTED_BY_ACTION.get(context.action, COUNTED)
        counts = await self._counters.hit(list(subjects.values()), what)
        kind_of = {key: kind for kind, key in subjects.items()}
        features = counter_features({(kind_of[key], window): hits for (key, window), hits in counts.items()}, what)
        failures = FAILURES_BY_ACTION.get(context.action)
        if failures is not None:
            seen = await self._counters.peek(list(subjects.values()), failures)
            features |= counter_features({(kind_of[key], window): n for (key, window), n in seen.items()}, failures)
        sku_hour = counts.get((subjects.get("sku", ""), "1h"), 0)
        features |= request_features(
            context, high_demand_per_hour=self._settings.risk_high_demand_per_hour, sku_orders_1h=sku_hour
        )
        policy = await self._current()
        decision = await self._judge(context, subjects, features, policy)
        return self._record(context, subjects, decision)

    async def failed(self, context: RiskContext) -> None:
        """Count a failure its caller saw (a wrong voucher code, a wrong one-time code) for the request's
        subjects; the next decision on that action reads it (`account.redeem_failures_1h`)."""
        failures = FAILURES_BY_ACTION.get(context.action)
        if failures is None or not self._settings.risk_enabled:
            return
        await self._counters.hit(list(context.subjects().values()), failures)

    async def _judge(
        self, context: RiskContext, subjects: dict[str, str], features: dict[str, Value], policy: _Policy
    ) -> Decision:
        listed = {key: policy.verdicts[key] for key in subjects.values() if key in policy.verdicts}
        blocked = [key for key, verdict in listed.items() if verdict == "block"]
        if blocked:
            return Decision(
                "decline", 100, tuple(f"list:block:{key.partition(':')[0]}" for key in blocked), None, features
            )
        if listed:
            return Decision(
                "approve", 0, tuple(f"list:allow:{key.partition(':')[0]}" for key in listed), None, features
            )
        score, hard, reasons = 0, "approve", []
        for rule in policy.rules:
            if not rule.applies_to(context.action) or not holds(rule.tree, features):
                continue
            score += rule.score
            reasons.append(f"rule:{rule.name}")
            if rule.outcome is not None and SEVERITY[rule.outcome] > SEVERITY[hard]:
                hard = rule.outcome
        models = policy.models
        model_score = shadow_score = None
        if models.active is not None:
            probability = models.active.probability(features)
            model_score = round(probability * 100)
            points = round(probability * self._settings.risk_model_weight)
            score += points
            reasons.append(f"model:v{models.active.version}:{points:+d}")
        elif models.fallback:
            reasons.append("model_fallback")
        if models.shadow is not None:
            shadow_score = round(models.shadow.probability(features) * 100)
        score = max(0, min(100, score))
        by_score = self._by_score(score)
        outcome = hard if SEVERITY[hard] > SEVERITY[by_score] else by_score
        if outcome == "review" and context.can_hold:
            return Decision(outcome, score, tuple(reasons[:MAX_REASONS]), None, features, model_score, shadow_score)
        if outcome in ("challenge", "review"):
            bits = self._bits(score)
            if context.solution:
                failed = await self._redeem(context.solution, action=context.action, bits=bits)
                if failed is None:
                    return Decision(
                        "approve",
                        score,
                        (*reasons, "challenge_solved")[:MAX_REASONS],
                        None,
                        features,
                        model_score,
                        shadow_score,
                    )
                reasons.append(failed)
            challenge = self._pow.issue(context.action, bits)
            return Decision(
                outcome, score, tuple(reasons[:MAX_REASONS]), challenge, features, model_score, shadow_score
            )
        return Decision(outcome, score, tuple(reasons[:MAX_REASONS]), None, features, model_score, shadow_score)

    async def _redeem(self, solution: str, *, action: str, bits: int) -> str | None:
        """A solved proof-of-work, or a person's answer to an image captcha (`<captcha token>:<answer>`)."""
        if solution.startswith(f"{captcha.VERSION}:"):
            token, _, answer = solution.rpartition(":")
            return await self.captchas.redeem(token, answer, action=action)
        return await self._pow.redeem(solution, action=action, bits=bits)

    def _record(self, context: RiskContext, subjects: dict[str, str], decision: Decision) -> Decision:
        subject = next(
            (subjects[kind] for kind in ("account", "agent", "contact", "device", "ip") if kind in subjects), "-"
        )
        row: dict[str, Any] = {
            "at": clock.now(),
            "action": context.action[:32],
            "subject": subject[:80],
            "outcome": decision.outcome,
            "score": decision.score,
            "reasons": [reason[:100] for reason in decision.reasons],
            "features": decision.features,
            "subjects": subjects,
            "model_score": decision.model_score,
            "shadow_score": decision.shadow_score,
        }
        if decision.outcome == "review" and context.can_hold:
            return replace(decision, row=row)
        del row["subjects"]
        self.log.add(row)
        return decision

    async def flush(self) -> None:
        """Write now what waits behind the requests (counter hits held in the process, decisions not yet logged),
        for a caller that reads those tables next."""
        await self._counters.flush()
        await self.log.flush()

    async def close(self) -> None:
        await self._counters.close()
        await self.log.flush()
