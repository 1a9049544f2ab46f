"""The admin API of risk control (docs/risk.md): recorded decisions, rules (add, backtest, switch on and
off), the allow/block lists, the review queue and the learned models (list, show, promote). Reads need
`risk.read`, changes `risk.write`; every change is audited and takes effect in this process at once, in
the others within `KAQUAN_RISK_REFRESH_S`."""

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from kaquan.identity.permissions import Permission
from kaquan.kit.bounds import Id
from kaquan.payments import review
from kaquan.risk import FEATURES, SEVERITY, learning, lists, recent, rules
from kaquan.web.content import JSON_ONLY
from kaquan.web.deps import Principal, RuntimeDep, require

router = APIRouter(prefix="/admin/api/risk", tags=["risk"], dependencies=JSON_ONLY)

RiskRead = Annotated[Principal, require(Permission.RISK_READ)]
RiskWrite = Annotated[Principal, require(Permission.RISK_WRITE)]
Outcome = Literal["approve", "challenge", "review", "decline"]


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=80)
    expression: str = Field(min_length=1, max_length=500, examples=["ip.orders_1m > 5 and sku.high_demand"])
    actions: str = Field(default="*", max_length=200, description="* or a comma-separated list of actions")
    score: int = Field(default=0, ge=-100, le=100, description="added to the decision's score when the rule hits")
    outcome: Literal["challenge", "review", "decline"] | None = Field(
        default=None, description="a hard outcome when the rule hits, whatever the score"
    )
    enabled: bool = Field(default=False, description="off by default: backtest it first")
    confirm: bool = Field(
        default=False,
        description="switch a declining rule on although it would have declined more than the allowed share of"
        " the last week's approved decisions (otherwise 409 `risk_rule_needs_confirmation`)",
    )


class RuleOut(BaseModel):
    name: str
    expression: str
    actions: str
    score: int
    outcome: str | None
    enabled: bool
    created_by: str
    created_at: datetime
    updated_at: datetime


class BacktestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expression: str = Field(min_length=1, max_length=500)
    actions: str = Field(default="*", max_length=200)
    last: int = Field(default=1000, ge=1, le=rules.MAX_BACKTEST, description="how many recent decisions to read")


class BacktestOut(BaseModel):
    examined: int
    hits: int
    share: float
    hits_by_outcome: dict[str, int] = Field(description="what the decisions it hits actually answered")
    sample: list[int] = Field(description="ids of a few decisions it hits")


class ListEntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["ip", "prefix", "device", "contact", "account"]
    value: str = Field(min_length=1, max_length=200, description="as written, or the digest shown in decisions")
    verdict: Literal["allow", "block"]
    note: str = Field(default="", max_length=200)


class ListEntryOut(BaseModel):
    kind: str
    value: str
    verdict: str
    note: str
    created_by: str
    created_at: datetime


class DecisionOut(BaseModel):
    id: int
    at: datetime
    action: str
    subject: str
    outcome: str
    score: int
    reasons: list[str]
    features: dict[str, Any]
    label: str | None = Field(description="fraud or legit, from a review verdict; null while unknown")


def _rule_out(rule: Any) -> RuleOut:
    return RuleOut.model_validate(rule, from_attributes=True)


class FeatureOut(BaseModel):
    name: str = Field(examples=["ip.orders_1m"])
    meaning: str


@router.get("/features")
async def features(admin: RiskRead) -> list[FeatureOut]:
    """Every name a rule may use, with its meaning."""
    return [FeatureOut(name=name, meaning=meaning) for name, meaning in FEATURES.items()]


@router.get("/decisions")
async def decisions(
    rt: RuntimeDep,
    admin: RiskRead,
    outcome: Outcome | None = None,
    subject: Annotated[str | None, Query(max_length=80)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DecisionOut]:
    """The latest recorded decisions, newest first; by outcome or subject (`ip:203.0.113.7`, `device:<digest>`)."""
    await rt.risk.log.flush()
    async with rt.db.read() as session:
        found = await recent(session, outcome=outcome, subject=subject, limit=limit)
    return [DecisionOut.model_validate(decision, from_attributes=True) for decision in found]


@router.get("/rules")
async def list_rules(rt: RuntimeDep, admin: RiskRead) -> list[RuleOut]:
    async with rt.db.read() as session:
        return [_rule_out(rule) for rule in await rules.all_rules(session)]


@router.post("/rules", status_code=201)
async def add_rule(rt: RuntimeDep, admin: RiskWrite, body: RuleIn) -> RuleOut:
    """Save a rule; a malformed expression is refused with 400 `invalid_rule` and its position."""
    await rt.risk.log.flush()
    async with rt.db.transaction() as session:
        fields = body.model_dump(exclude={"confirm"})
        rule = await rules.add(session, **fields, actor=admin.actor, guard=_guard(rt, body.confirm))
    rt.risk.invalidate()
    return _rule_out(rule)


@router.post("/rules/backtest")
async def backtest(rt: RuntimeDep, admin: RiskRead, body: BacktestIn) -> BacktestOut:
    """How many of the last `last` recorded decisions the expression would have hit, before switching it on."""
    await rt.risk.log.flush()
    async with rt.db.read() as session:
        found = await rules.backtest(session, body.expression, actions=body.actions, last=body.last)
    return BacktestOut(
        examined=found.examined,
        hits=found.hits,
        share=found.share,
        hits_by_outcome=dict(sorted(found.hits_by_outcome.items(), key=lambda item: SEVERITY[item[0]])),
        sample=found.sample,
    )


def _guard(rt: RuntimeDep, confirmed: bool) -> rules.HonestGuard:
    settings = rt.settings
    return rules.HonestGuard(settings.risk_decline_at, settings.risk_rule_honest_decline_bp, confirmed=confirmed)


async def _switch(rt: RuntimeDep, admin: Principal, name: str, enabled: bool, *, confirm: bool = False) -> RuleOut:
    if enabled:
        await rt.risk.log.flush()
    async with rt.db.transaction() as session:
        rule = await rules.set_enabled(session, name, enabled, actor=admin.actor, guard=_guard(rt, confirm))
    rt.risk.invalidate()
    return _rule_out(rule)


@router.post("/rules/{name}/enable")
async def enable_rule(rt: RuntimeDep, admin: RiskWrite, name: str, confirm: bool = False) -> RuleOut:
    """Switch a rule on; a declining rule that would have declined more than the allowed share of the last
    week's approved decisions is refused with 409 `risk_rule_needs_confirmation` unless `confirm=true`."""
    return await _switch(rt, admin, name, True, confirm=confirm)


@router.post("/rules/{name}/disable")
async def disable_rule(rt: RuntimeDep, admin: RiskWrite, name: str) -> RuleOut:
    return await _switch(rt, admin, name, False)


@router.get("/lists")
async def list_entries(rt: RuntimeDep, admin: RiskRead) -> list[ListEntryOut]:
    async with rt.db.read() as session:
        return [ListEntryOut.model_validate(e, from_attributes=True) for e in await lists.entries(session)]


@router.post("/lists", status_code=201)
async def add_list_entry(rt: RuntimeDep, admin: RiskWrite, body: ListEntryIn) -> ListEntryOut:
    async with rt.db.transaction() as session:
        entry = await lists.add(session, body.kind, body.value, body.verdict, note=body.note, actor=admin.actor)
    rt.risk.invalidate()
    return ListEntryOut.model_validate(entry, from_attributes=True)


@router.delete("/lists/{kind}/{value:path}", status_code=204)
async def remove_list_entry(
    rt: RuntimeDep, admin: RiskWrite, kind: Literal["ip", "prefix", "device", "contact", "account"], value: str
) -> None:
    """Remove an entry (`/lists/prefix/10.1.2.0/24`)."""
    async with rt.db.transaction() as session:
        await lists.remove(session, kind, value, actor=admin.actor)
    rt.risk.invalidate()


class VerdictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=300, description="why, for the audit trail")


class HeldOrderOut(BaseModel):
    number: str
    order_status: str = Field(description="pending_payment: may still be paid; paid: waits for the verdict")
    sku_id: int
    quantity: int
    total_minor: int
    currency: str
    contact: str
    score: int
    reasons: list[str]
    opened_at: datetime


class EarlierOrderOut(BaseModel):
    number: str
    status: str
    total_minor: int
    currency: str
    created_at: datetime


class EarlierDecisionOut(BaseModel):
    id: int
    at: datetime
    action: str
    outcome: str
    score: int
    label: str | None


class EarlierReviewOut(BaseModel):
    order_id: int
    status: str
    opened_at: datetime
    verdict_by: str | None


class CaseOut(BaseModel):
    held: HeldOrderOut
    decision: DecisionOut
    earlier_orders: list[EarlierOrderOut] = Field(description="orders with the same contact, newest first")
    refunded_orders: int
    earlier_decisions: list[EarlierDecisionOut] = Field(description="by the same account, contact, device or IP")
    earlier_reviews: list[EarlierReviewOut] = Field(description="reviews sharing its contact, device or IP")


class VerdictOut(BaseModel):
    number: str
    verdict: Literal["approved", "declined", "fraud"]
    order_status: str
    refund_no: str | None
    blocked: list[str] = Field(description="list keys a fraud verdict put on the block list")
    replayed: bool = Field(description="this verdict was given before; nothing was done again")


def held_out(held: review.Held) -> HeldOrderOut:
    order, found = held.order, held.review
    return HeldOrderOut(
        number=order.number,
        order_status=order.status,
        sku_id=order.sku_id,
        quantity=order.quantity,
        total_minor=order.total_minor,
        currency=order.currency,
        contact=order.contact,
        score=found.score,
        reasons=found.reasons,
        opened_at=found.opened_at,
    )


@router.get("/reviews")
async def review_queue(
    rt: RuntimeDep, admin: RiskRead, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[HeldOrderOut]:
    """Orders held for review, oldest first."""
    async with rt.db.read() as session:
        return [held_out(held) for held in await review.queue(session, limit=limit)]


@router.get("/reviews/{number}")
async def review_case(rt: RuntimeDep, admin: RiskRead, number: Annotated[str, Path(max_length=32)]) -> CaseOut:
    """A held order (or one reviewed already) with its decision and its buyer's history."""
    async with rt.db.read() as session:
        found = await review.case(session, number)
    history = found.history
    return CaseOut(
        held=held_out(found.held),
        decision=DecisionOut.model_validate(found.decision, from_attributes=True),
        earlier_orders=[EarlierOrderOut.model_validate(o, from_attributes=True) for o in history.orders],
        refunded_orders=history.refunded,
        earlier_decisions=[EarlierDecisionOut.model_validate(d, from_attributes=True) for d in history.decisions],
        earlier_reviews=[EarlierReviewOut.model_validate(r, from_attributes=True) for r in history.reviews],
    )


@router.post("/reviews/{number}/{verdict}")
async def give_verdict(
    rt: RuntimeDep,
    admin: RiskWrite,
    number: Annotated[str, Path(max_length=32)],
    verdict: review.Verdict,
    body: VerdictIn | None = None,
) -> VerdictOut:
    """approve (delivery proceeds), decline (cancelled if unpaid, else refunded) or fraud (decline, block the
    buyer's contact, device and IP, label the decision). The first verdict wins: the same one again answers
    `replayed`, a different one 409 `risk_review_concluded`."""
    reason = body.reason if body is not None else ""
    async with rt.db.transaction() as session:
        done = await review.give_verdict(rt.db, session, number, verdict, actor=admin.actor, reason=reason)
    if done.blocked:
        rt.risk.invalidate()
    return VerdictOut.model_validate(done, from_attributes=True)


class ModelMetricsOut(BaseModel):
    auc: float | None = Field(description="area under the ROC curve on the held-out later period")
    precision: float | None = Field(description="of the decisions it flags (probability ≥ threshold), the frauds")
    recall: float | None = Field(description="of the frauds, the share it flags")
    threshold: float | None
    train_rows: int | None
    test_rows: int | None = Field(description="decisions of the later period it was measured on")
    test_fraud: int | None
    test_from: str | None = Field(description="where the later period starts (ISO 8601)")
    test_until: str | None


class ModelOut(BaseModel):
    version: int = Field(description="the model's id in every path: /admin/api/risk/models/{version}")
    status: Literal["shadow", "active", "retired"] = Field(
        description="shadow: scored and recorded, not acting; active: the promoted one, acting; retired"
    )
    trained_at: datetime
    trained_by: str
    promoted_at: datetime | None
    promoted_by: str | None
    metrics: ModelMetricsOut


class ScoreBandOut(BaseModel):
    band: str = Field(examples=["40–49"], description="model score 0–100")
    count: int


class ModelDetailOut(ModelOut):
    features: list[str] = Field(description="what the model reads, in order")
    trees: int | None = Field(description="how many trees it has")
    held_out_scores: list[ScoreBandOut] = Field(
        description="how it scored its held-out later period when it was trained, in ten bands"
    )
    recent_scores: list[ScoreBandOut] | None = Field(
        description="how it scored the last 5,000 recorded decisions while active or in shadow; null when retired"
    )


class PromotedOut(ModelOut):
    retired: int | None = Field(description="the version that was active before, now retired")


RECENT_SCORES = 5000


def _bands(counts: list[int]) -> list[ScoreBandOut]:
    width = 100 // len(counts)
    return [
        ScoreBandOut(band=f"{i * width}–{(i + 1) * width - 1 if i < len(counts) - 1 else 100}", count=count)
        for i, count in enumerate(counts)
    ]


def _model_out(model: Any) -> dict[str, Any]:
    metrics = model.metrics if isinstance(model.metrics, dict) else {}
    return {
        "version": model.version,
        "status": model.status,
        "trained_at": model.trained_at,
        "trained_by": model.trained_by,
        "promoted_at": model.promoted_at,
        "promoted_by": model.promoted_by,
        "metrics": ModelMetricsOut(**{name: metrics.get(name) for name in ModelMetricsOut.model_fields}),
    }


@router.get("/models")
async def list_models(rt: RuntimeDep, admin: RiskRead) -> list[ModelOut]:
    """Every learned model, newest first, with its metrics on the later period it never trained on."""
    async with rt.db.read() as session:
        return [ModelOut(**_model_out(model)) for model in await learning.all_models(session)]


@router.get("/models/{version}")
async def show_model(rt: RuntimeDep, admin: RiskRead, version: Annotated[Id, Path()]) -> ModelDetailOut:
    """One model: its metrics, what it reads and its score distributions. 404 `risk_model_not_found`."""
    await rt.risk.log.flush()
    async with rt.db.read() as session:
        model = await learning.one_model(session, version)
        scored = await learning.score_distribution(session, last=RECENT_SCORES) if model.status != "retired" else None
    metrics = model.metrics if isinstance(model.metrics, dict) else {}
    held_out = metrics.get("histogram")
    return ModelDetailOut(
        **_model_out(model),
        features=[str(name) for name in model.feature_names] if isinstance(model.feature_names, list) else [],
        trees=metrics.get("trees"),
        held_out_scores=_bands(held_out) if isinstance(held_out, list) and held_out else [],
        recent_scores=_bands(scored[model.status]) if scored is not None else None,
    )


@router.post("/models/{version}/promote")
async def promote_model(rt: RuntimeDep, admin: RiskWrite, version: Annotated[Id, Path()]) -> PromotedOut:
    """Make the model act on decisions; the active one retires (audited `risk.model_promoted`). 404
    `risk_model_not_found`, 409 `risk_model_not_promotable` (active already), 409 `risk_model_unloadable`."""
    async with rt.db.transaction() as session:
        promoted = await learning.promote(session, version, actor=admin.actor)
        out = PromotedOut(**_model_out(promoted.model), retired=promoted.retired)
    rt.risk.invalidate()
    return out
