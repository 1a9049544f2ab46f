"""Risk control: one decision point for every path that gives something away (docs/risk.md).

`RiskEngine.decide(RiskContext)` counts the request's subjects, applies the allow/block lists and the
operators' rules, and answers a `Decision` (approve, challenge, review or decline, a score 0–100 and
the reasons), recorded in `risk_decisions`. `rules` and `lists` are the operators' services;
`challenges` the proof-of-work a challenged client solves; `learning` the model learned from outcomes.
"""

from kaquan.risk import challenges, learning, lists, reviews, rules
from kaquan.risk.challenges import Challenge, DatabaseSpentNonces, ProofOfWork, RedisSpentNonces, SpentNonces, solve
from kaquan.risk.counters import DatabaseCounters, RedisCounters, VelocityCounters
from kaquan.risk.decisions import SEVERITY, Decision, RiskEngine
from kaquan.risk.errors import ChallengeRequired, InvalidRule, RiskDeclined, RuleNeedsConfirmation
from kaquan.risk.features import FEATURES, RiskContext
from kaquan.risk.learning import Evidence
from kaquan.risk.recording import DecisionLog, recent

__all__ = [
    "FEATURES",
    "SEVERITY",
    "Challenge",
    "ChallengeRequired",
    "DatabaseCounters",
    "DatabaseSpentNonces",
    "Decision",
    "DecisionLog",
    "Evidence",
    "InvalidRule",
    "ProofOfWork",
    "RedisCounters",
    "RedisSpentNonces",
    "RiskContext",
    "RiskDeclined",
    "RiskEngine",
    "RuleNeedsConfirmation",
    "SpentNonces",
    "VelocityCounters",
    "challenges",
    "learning",
    "lists",
    "recent",
    "reviews",
    "rules",
    "solve",
]
