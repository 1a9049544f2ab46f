"""Learning from outcomes: labelled decisions → a gradient-boosted model, versioned, shadowed, promoted by a person.

**Labels.** A recorded decision is *fraud* when a reviewer said so (`risk_decisions.label`), when its
subject is block-listed (confirmed abuse), or when later evidence names its subject within a day of
it (`Evidence`: a refund or chargeback flagged as fraud, redemption guessing — gathered by the modules
that own them, `payments.fraud_evidence`); a reviewer's `legit` wins over all of these. Every other
recorded decision counts as legitimate.

**Training.** `train` reads the labelled history, sorts it by time and holds out the LATER part
(`HELD_OUT`, 20 %): the model learns from the earlier rows only and its precision, recall and AUC are
measured on the later ones, never on a training row — the way it will meet tomorrow's requests.
LightGBM is imported here only (the serving path never loads it), single-threaded and deterministic
under a seed. The trees are kept as kaquan's own JSON (`risk.scoring`), not as a pickle.

**Life of a model.** A new version starts in `shadow`: scored beside the active model on every
decision and recorded (`risk_decisions.shadow_score`), never acting. A person promotes it (`promote`,
audited); the one before is retired. At most one model is active (a partial unique index) and one in
shadow (a newer shadow retires the older).
"""

import asyncio
import logging
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from kaquan.audit import service as audit
from kaquan.kit import clock
from kaquan.kit.db import Database, serialize_on
from kaquan.risk import lists
from kaquan.risk.errors import ModelNotFound, ModelNotPromotable, ModelUnloadable, NotEnoughHistory
from kaquan.risk.expressions import Value
from kaquan.risk.features import ACTIONS, FEATURES
from kaquan.risk.models import RiskDecision, RiskModel
from kaquan.risk.scoring import MISSING, TreeModel, UnloadableModel, encode

log = logging.getLogger(__name__)
HELD_OUT = 0.2
MIN_EXAMPLES = 200
MIN_FRAUD = 10
MAX_HISTORY = 500_000
EVIDENCE_WINDOW = timedelta(days=1)
THRESHOLD = 0.5
HISTOGRAM_BINS = 10
EVIDENCE_SOURCES = ("refund", "chargeback", "review", "block_list", "redemption_guessing")

FEATURE_NAMES: tuple[str, ...] = (
    *(name for name in FEATURES if name != "request.action"),
    *(f"request.action={action}" for action in ACTIONS),
)
"""What a model reads: every numeric or yes/no feature, and the action one-hot."""


@dataclass(frozen=True)
class Evidence:
    """Something learned later that says a subject abused: `subject` is a subject key (`contact:<digest>`),
    `at` when the abusing request was made (an order's creation), `source` where it came from."""

    subject: str
    at: datetime
    source: str


@dataclass(frozen=True)
class Example:
    at: datetime
    features: dict[str, Value]
    fraud: bool


@dataclass(frozen=True)
class Fitted:
    feature_names: tuple[str, ...]
    trees: list[Any]
    metrics: dict[str, Any]


async def labelled_history(session: AsyncSession, evidence: Sequence[Evidence]) -> list[Example]:
    """Every recorded decision with features, oldest first, labelled (see the module's docstring)."""
    blocked = {key for key, verdict in (await lists.verdicts(session)).items() if verdict == "block"}
    named: dict[str, list[datetime]] = defaultdict(list)
    for item in evidence:
        named[item.subject].append(item.at)
    stmt = (
        select(RiskDecision.at, RiskDecision.subject, RiskDecision.features, RiskDecision.label)
        .order_by(RiskDecision.at, RiskDecision.id)
        .limit(MAX_HISTORY)
    )
    examples = []
    for at, subject, features, label in await session.execute(stmt):
        if not features:
            continue
        if label is not None:
            fraud = label == "fraud"
        else:
            fraud = subject in blocked or any(abs(at - when) <= EVIDENCE_WINDOW for when in named.get(subject, ()))
        examples.append(Example(at, features, fraud))
    return examples


def _tree(node: dict[str, Any]) -> Any:
    """One LightGBM tree (`dump_model()`'s `tree_structure`) as `risk.scoring` walks it."""
    if "leaf_value" in node:
        return float(node["leaf_value"])
    if node.get("decision_type") != "<=":
        raise UnloadableModel(f"unexpected split {node.get('decision_type')!r}")
    return [
        int(node["split_feature"]),
        float(node["threshold"]),
        MISSING[str(node["missing_type"]).lower()],
        bool(node["default_left"]),
        _tree(node["left_child"]),
        _tree(node["right_child"]),
    ]


def auc(labels: Sequence[bool], scores: Sequence[float]) -> float:
    """Area under the ROC curve: the chance a random fraud scores above a random legitimate one (ties half)."""
    ranked = sorted(zip(scores, labels, strict=True), key=lambda pair: pair[0])
    positives = sum(labels)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return math.nan
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        average_rank = (i + j + 1) / 2  # ranks i+1 … j share their mean
        rank_sum += average_rank * sum(1 for _, fraud in ranked[i:j] if fraud)
        i = j
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def _histogram(scores: Sequence[float]) -> list[int]:
    counts = [0] * HISTOGRAM_BINS
    for score in scores:
        counts[min(HISTOGRAM_BINS - 1, int(score * HISTOGRAM_BINS))] += 1
    return counts


def fit(examples: Sequence[Example], *, seed: int = 0, rounds: int = 80) -> Fitted:
    """Train on the earlier rows, measure on the later ones (CPU-bound: run it in a thread)."""
    import lightgbm  # only training needs it; serving walks the stored trees
    import numpy

    ordered = sorted(examples, key=lambda example: example.at)
    if len(ordered) < MIN_EXAMPLES:
        raise NotEnoughHistory(f"{len(ordered)} labelled decisions, at least {MIN_EXAMPLES} needed", rows=len(ordered))
    cut = ordered[int(len(ordered) * (1 - HELD_OUT))].at
    earlier = [example for example in ordered if example.at < cut]
    later = [example for example in ordered if example.at >= cut]
    for part, rows in (("earlier", earlier), ("later", later)):
        frauds = sum(example.fraud for example in rows)
        if frauds < MIN_FRAUD or frauds == len(rows):
            raise NotEnoughHistory(
                f"the {part} period has {frauds} frauds of {len(rows)}: both kinds are needed", period=part
            )
    names = FEATURE_NAMES
    matrix = numpy.array([encode(example.features, names) for example in earlier], dtype=numpy.float64)
    target = numpy.array([example.fraud for example in earlier], dtype=numpy.float64)
    params = {
        "objective": "binary",
        "learning_rate": 0.1,
        "num_leaves": 15,
        "min_data_in_leaf": 20,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "verbose": -1,
    }
    booster = lightgbm.train(
        params, lightgbm.Dataset(matrix, label=target, feature_name=[f"f{i}" for i in range(len(names))]), rounds
    )
    trees = [_tree(info["tree_structure"]) for info in booster.dump_model()["tree_info"]]
    model = TreeModel(0, names, trees)
    labels = [example.fraud for example in later]
    scores = [model.probability(example.features) for example in later]
    flagged = [score >= THRESHOLD for score in scores]
    caught = sum(1 for hit, fraud in zip(flagged, labels, strict=True) if hit and fraud)
    metrics = {
        "auc": round(auc(labels, scores), 4),
        "precision": round(caught / sum(flagged), 4) if any(flagged) else 0.0,
        "recall": round(caught / sum(labels), 4),
        "threshold": THRESHOLD,
        "train_rows": len(earlier),
        "train_fraud": int(target.sum()),
        "test_rows": len(later),
        "test_fraud": sum(labels),
        "train_from": earlier[0].at.isoformat(),
        "test_from": cut.isoformat(),
        "test_until": later[-1].at.isoformat(),
        "histogram": _histogram(scores),
        "trees": len(trees),
    }
    return Fitted(names, trees, metrics)


async def train(db: Database, evidence: Sequence[Evidence], *, actor: str, seed: int = 0) -> RiskModel:
    """Train a new version from the labelled history and put it in shadow (audited `risk.model_trained`)."""
    async with db.read() as session:
        examples = await labelled_history(session, evidence)
    fitted = await asyncio.to_thread(fit, examples, seed=seed)
    async with db.transaction() as session:
        await serialize_on(session, "risk.models")
        latest = (await session.execute(select(func.max(RiskModel.version)))).scalar_one()
        await session.execute(update(RiskModel).where(RiskModel.status == "shadow").values(status="retired"))
        model = RiskModel(
            version=(latest or 0) + 1,
            status="shadow",
            trained_at=clock.now(),
            trained_by=actor,
            feature_names=list(fitted.feature_names),
            metrics=fitted.metrics,
            trees=fitted.trees,
        )
        session.add(model)
        await session.flush()
        await audit.record(
            session, actor, "risk.model_trained", target=f"risk_model:{model.version}", after=describe(model)
        )
    return model


class Retrainer:
    """The worker's schedule: a new shadow model when the newest is older than `every_s`. It looks at most
    every `CHECK_EVERY_S`, so a history too thin to train on costs one read per look, not one per pass."""

    CHECK_EVERY_S = 600.0

    def __init__(self, every_s: float) -> None:
        self._every_s = every_s
        self._next_look = float("-inf")

    async def run_due(self, db: Database, evidence: Callable[[], Awaitable[Sequence[Evidence]]]) -> int:
        """1 when a model was trained now, else 0 (not due, or not enough history yet)."""
        now = time.monotonic()
        if now < self._next_look:
            return 0
        self._next_look = now + self.CHECK_EVERY_S
        async with db.read() as session:
            newest = (await session.execute(select(func.max(RiskModel.trained_at)))).scalar_one()
        if newest is not None and (clock.now() - newest).total_seconds() < self._every_s:
            return 0
        try:
            await train(db, await evidence(), actor="worker")
        except NotEnoughHistory as exc:
            log.info("risk model not retrained: %s", exc)
            return 0
        return 1


async def all_models(session: AsyncSession) -> list[RiskModel]:
    """Every model, newest first, without its trees (a corrupt one is listed too: its trees are never read here)."""
    stmt = select(RiskModel).options(defer(RiskModel.trees)).order_by(RiskModel.version.desc())
    return list((await session.execute(stmt)).scalars())


async def one_model(session: AsyncSession, version: int) -> RiskModel:
    """One model, without its trees; `ModelNotFound` when there is no such version."""
    stmt = select(RiskModel).options(defer(RiskModel.trees)).where(RiskModel.version == version)
    model = (await session.execute(stmt)).scalar_one_or_none()
    if model is None:
        raise ModelNotFound(version)
    return model


@dataclass(frozen=True)
class Promoted:
    model: RiskModel
    retired: int | None  # the version that acted before, if any


async def promote(session: AsyncSession, version: int, *, actor: str) -> Promoted:
    """Make `version` the acting model (a shadow, or a retired one to roll back to); the active one retires.
    A model whose stored trees do not load is refused (`ModelUnloadable`): it would only make every decision
    fall back to the rules."""
    await serialize_on(session, "risk.models")
    status = (await session.execute(select(RiskModel.status).where(RiskModel.version == version))).scalar_one_or_none()
    if status is None:
        raise ModelNotFound(version)
    if status == "active":
        raise ModelNotPromotable(version, status)
    try:
        stored = (
            await session.execute(select(RiskModel.feature_names, RiskModel.trees).where(RiskModel.version == version))
        ).one()
        loaded(version, stored.feature_names, stored.trees)
    except (UnloadableModel, ValueError) as exc:
        raise ModelUnloadable(
            version, str(exc) if isinstance(exc, UnloadableModel) else "the stored JSON does not parse"
        ) from None
    model = (
        await session.execute(select(RiskModel).where(RiskModel.version == version).options(defer(RiskModel.trees)))
    ).scalar_one()
    before = (
        await session.execute(select(RiskModel).where(RiskModel.status == "active").options(defer(RiskModel.trees)))
    ).scalar_one_or_none()
    if before is not None:
        before.status = "retired"
        await session.flush()
    model.status, model.promoted_at, model.promoted_by = "active", clock.now(), actor
    await session.flush()
    await audit.record(
        session,
        actor,
        "risk.model_promoted",
        target=f"risk_model:{version}",
        before={"active": before.version if before is not None else None},
        after={"active": version},
    )
    return Promoted(model, before.version if before is not None else None)


@dataclass(frozen=True)
class Serving:
    """What the decision point scores with: the active and shadow models, and whether the active one failed
    (`fallback`: then `chosen` is the version chosen to act and `why` what is wrong with it)."""

    active: TreeModel | None
    shadow: TreeModel | None
    fallback: bool
    chosen: int | None = None
    why: str = ""


NO_MODELS = Serving(None, None, fallback=False)
_unloadable: set[int] = set()


async def serving(session: AsyncSession, current: Serving = NO_MODELS) -> Serving:
    """The stored active and shadow models, checked and ready; a model already held in `current` is reused, so
    the decision point's periodic reload reads two small rows and rebuilds nothing until a model changes."""
    chosen = dict(
        (await session.execute(select(RiskModel.status, RiskModel.version).where(RiskModel.status != "retired"))).all()
    )
    held = {model.version: model for model in (current.active, current.shadow) if model is not None}
    wanted = [version for version in chosen.values() if version not in held]
    why: dict[int, str] = {version: "missing" for version in wanted}
    for version in wanted:  # at most two: the active and the shadow
        stmt = select(RiskModel.feature_names, RiskModel.trees).where(RiskModel.version == version)
        try:
            row = (await session.execute(stmt)).one_or_none()
            if row is None:
                continue
            held[version] = loaded(version, row.feature_names, row.trees)
            del why[version]
        except (UnloadableModel, ValueError) as exc:  # ValueError: a column that is not JSON at all
            why[version] = (str(exc) if isinstance(exc, UnloadableModel) else "the stored JSON does not parse")[:200]
            if version not in _unloadable:  # said once per process; every decision says `model_fallback`
                _unloadable.add(version)
                log.warning("risk model v%d cannot be loaded (%s): the rules decide alone", version, why[version])
    active = held.get(chosen["active"]) if "active" in chosen else None
    shadow = held.get(chosen["shadow"]) if "shadow" in chosen else None
    if "active" in chosen and active is None:
        return Serving(None, shadow, fallback=True, chosen=chosen["active"], why=why.get(chosen["active"], "missing"))
    return Serving(active, shadow, fallback=False)


def loaded(version: int, feature_names: Any, trees: Any) -> TreeModel:
    """A stored model checked node by node; anything not of the shape kaquan writes is `UnloadableModel`."""
    try:
        return TreeModel(version, feature_names, trees)
    except UnloadableModel:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise UnloadableModel(f"{type(exc).__name__}: {exc}") from None


def describe(model: RiskModel) -> dict[str, Any]:
    return {
        "version": model.version,
        "status": model.status,
        "trained_at": model.trained_at.isoformat(),
        "trained_by": model.trained_by,
        "features": list(model.feature_names),
        "metrics": model.metrics,
        "promoted_at": model.promoted_at.isoformat() if model.promoted_at else None,
        "promoted_by": model.promoted_by,
    }


async def score_distribution(session: AsyncSession, *, last: int = 5000) -> dict[str, list[int]]:
    """How the active and shadow models scored the last `last` decisions, in ten bins of 0–100."""
    recent = (
        select(RiskDecision.model_score, RiskDecision.shadow_score).order_by(RiskDecision.id.desc()).limit(last)
    ).subquery()
    found: dict[str, list[int]] = {"active": [0] * HISTOGRAM_BINS, "shadow": [0] * HISTOGRAM_BINS}
    for model_score, shadow_score in await session.execute(select(recent.c.model_score, recent.c.shadow_score)):
        for which, score in (("active", model_score), ("shadow", shadow_score)):
            if score is not None:
                found[which][min(HISTOGRAM_BINS - 1, score * HISTOGRAM_BINS // 100)] += 1
    return found
