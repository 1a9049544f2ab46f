"""`kaquan risk simulate`: honest buyers and attacks through the real HTTP API of a real server, measured.

The flow (docs/risk.md, "Measuring it: the simulator"):

1. A training run: the traffic of seed A (`bench.traffic`) is sent to `kaquan serve` (a process this
   command starts, on its own database and Redis), the server decides every request as it would in
   production and records the decisions; the simulator then labels the recorded rows by what it knows it
   sent (`fraud` for an attacker's, `legit` for an honest buyer's), the way a reviewer's verdict would.
2. `risk.learning.train` on that history, and the new model promoted to act (unless `--no-model`: then the
   rules and whatever model already acts decide). This changes the acting model of the database it runs on: run the
   simulator on a staging copy, never on the shop's own database.
3. A held-out run with seed B, a fresh catalogue and fresh buyers, against a fresh server process; what
   the server recorded for each request's subject says how it was answered.

The report: per attack kind the share stopped (declined, challenged or held for review by risk, or refused
by another guard such as the hold caps), the share of honest buyers challenged, and whether the goal
(≥ 95 % of attack requests stopped, ≤ 1 % of honest buyers challenged) is met.
"""

import asyncio
import json
import os
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from kaquan.bench import traffic
from kaquan.bench.goods import stocked_sku
from kaquan.bench.harness import (
    HOST,
    HttpConnection,
    Progress,
    ProtocolError,
    ServerProcess,
    free_port,
    quiet,
    server_environment,
)
from kaquan.bench.traffic import ATTACK_KINDS, Request, Sku, Skus
from kaquan.catalog import service as catalog
from kaquan.catalog.schemas import ProductCreate
from kaquan.identity import tokens, users
from kaquan.identity.permissions import Permission
from kaquan.kit.db import describe
from kaquan.payments.fraud import fraud_evidence
from kaquan.risk import learning
from kaquan.risk.errors import NotEnoughHistory
from kaquan.risk.models import RiskDecision
from kaquan.runtime import Runtime

GOAL_STOPPED = 0.95
GOAL_HONEST_CHALLENGED = 0.01
CONCURRENCY = 8
STOPPED_BY_RISK = ("decline", "challenge", "review")


@dataclass(frozen=True)
class Options:
    seed: int = 1
    held_out_seed: int | None = None  # seed + 1 when not given
    honest: int = 150
    attackers: int = 6
    train: bool = True
    workers: int = 1

    @property
    def seed_b(self) -> int:
        return self.held_out_seed if self.held_out_seed is not None else self.seed + 1


@dataclass
class Sent:
    """What the server answered, by HTTP status and error code, per kind."""

    answers: dict[str, Counter[str]]
    elapsed_s: float

    @property
    def errors_5xx(self) -> int:
        return sum(n for counter in self.answers.values() for answer, n in counter.items() if answer.startswith("5"))


async def _stage(rt: Runtime, tag: str, codes: int) -> Skus:
    """A catalogue of the run's own: a hot SKU, three ordinary ones and a cheap one, each with `codes` codes."""
    prices = {"HOT": 19_900, "A": 3_000, "B": 5_000, "C": 10_000, "CHEAP": 100}
    made: dict[str, Sku] = {}
    async with rt.db.transaction() as session:
        product = await catalog.create_product(session, ProductCreate(name=tag, kind="voucher"), actor="simulate")
        for name, price in prices.items():
            code = f"{tag}-{name}"
            await stocked_sku(
                rt,
                session,
                product_id=product.id,
                code=code,
                price_minor=price,
                codes=codes,
                actor="simulate",
                unit_cost_minor=price // 2,
            )
            made[name] = Sku(code, price)
    return Skus(made["HOT"], (made["A"], made["B"], made["C"]), made["CHEAP"])


async def _clerk(rt: Runtime, tag: str) -> tuple[str, str]:
    """A clerk allowed to redeem (whose token the code guessers hold): its token and its recorded subject."""
    async with rt.db.transaction() as session:
        user = await users.create_user(
            session, f"sim-clerk-{tag.lower()}", secrets.token_urlsafe(24), "operator", actor="simulate"
        )
        _, plaintext = await tokens.create_token(
            session,
            user.id,
            f"{tag} clerk",
            [Permission.REDEEM],
            expires_in_days=1,
            allowed=frozenset(Permission),
            actor="simulate",
        )
    return plaintext, traffic.clerk_subject(user.id)


def _answer(status: int, body: bytes) -> str:
    """`201`, `403 risk_declined`, `429 rate_limited`, …"""
    if status < 300:
        return str(status)
    try:
        code = json.loads(body).get("error", {}).get("code") or json.loads(body).get("code")
    except (ValueError, AttributeError):
        code = None
    return f"{status} {code}" if code else str(status)


async def _send(port: int, requests: Sequence[Request]) -> Sent:
    answers: dict[str, Counter[str]] = defaultdict(Counter)
    queue: asyncio.Queue[Request] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)

    async def worker() -> None:
        connection = HttpConnection(HOST, port)
        try:
            while not queue.empty():
                request = queue.get_nowait()
                try:
                    response = await connection.request(request.method, request.path, request.body, request.headers)
                    answers[request.kind][_answer(response.status, response.body)] += 1
                except (OSError, asyncio.IncompleteReadError, ProtocolError) as exc:
                    answers[request.kind][f"failed {type(exc).__name__}"] += 1
                    await connection.close()
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return Sent(dict(answers), time.perf_counter() - started)


def _risk_settings() -> dict[str, str]:
    """The risk settings of this environment (`KAQUAN_RISK_*`: thresholds, the model's weight), for the server:
    trying another threshold is one variable away."""
    return {name: value for name, value in os.environ.items() if name.startswith("KAQUAN_RISK_")}


async def _last_decision_id(rt: Runtime) -> int:
    async with rt.db.read() as session:
        return int((await session.execute(select(func.coalesce(func.max(RiskDecision.id), 0)))).scalar_one())


async def _run(rt: Runtime, seed: int, options: Options, progress: Progress) -> tuple[traffic.Plan, Sent, int]:
    """One run against a server process of its own; returns the plan, the answers and the last decision id
    before it (every decision row of this run has a larger id)."""
    tag = traffic.fresh_tag()
    codes = 20 * (options.honest + options.attackers) + 50
    skus = await _stage(rt, tag, codes)
    clerk_token, clerk_subject = await _clerk(rt, tag)
    planned = traffic.plan(
        seed,
        honest=options.honest,
        attackers=options.attackers,
        skus=skus,
        clerk_token=clerk_token,
        clerk_subject=clerk_subject,
    )
    before = await _last_decision_id(rt)
    server = await ServerProcess.start(
        server_environment(
            rt.settings,
            KAQUAN_TRUSTED_PROXIES="127.0.0.1/32",
            KAQUAN_DEV_GATEWAY="1",  # orders need a gateway to be placed; nobody pays in a simulation
            KAQUAN_DEV_GATEWAY_SECRET=secrets.token_urlsafe(32),
            **_risk_settings(),
        ),
        port=free_port(),
        log_path=rt.settings.var_dir / "risk-simulate-server.log",
        workers=options.workers,
    )
    try:
        await server.wait_ready("/healthz")
        progress(f"seed {seed}: {len(planned.requests)} requests from {sum(planned.actors.values())} actors …")
        sent = await _send(server.port, planned.requests)
    finally:
        await server.stop()  # a graceful stop writes the decisions still buffered
    return planned, sent, before


async def _recorded(rt: Runtime, after: int) -> list[tuple[str, str, int]]:
    """The subject, outcome and score of every decision recorded since `after`."""
    async with rt.db.read() as session:
        stmt = (
            select(RiskDecision.subject, RiskDecision.outcome, RiskDecision.score)
            .where(RiskDecision.id > after)
            .order_by(RiskDecision.id)
        )
        return [(row.subject, row.outcome, row.score) for row in await session.execute(stmt)]


def _kinds_by_subject(planned: traffic.Plan) -> dict[str, str]:
    return {request.subject: request.kind for request in planned.requests if request.subject is not None}


async def label_rows(rt: Runtime, planned: traffic.Plan, after: int) -> dict[str, int]:
    """Label the run's recorded decisions by who sent them: `fraud` for an attacker, `legit` for an honest
    buyer (as a reviewer's verdict would). Rows of subjects the simulator did not send stay unlabelled."""
    kinds = _kinds_by_subject(planned)
    fraud = [subject for subject, kind in kinds.items() if kind != "honest"]
    legit = [subject for subject, kind in kinds.items() if kind == "honest"]
    counts = {}
    async with rt.db.transaction() as session:
        for label, subjects in (("fraud", fraud), ("legit", legit)):
            total = 0
            for start in range(0, len(subjects), 500):
                result = await session.execute(
                    update(RiskDecision)
                    .where(RiskDecision.id > after, RiskDecision.subject.in_(subjects[start : start + 500]))
                    .values(label=label)
                )
                total += result.rowcount or 0  # type: ignore[attr-defined]
            counts[label] = total
    return counts


def _refused_otherwise(answer: str) -> bool:
    """Refused by another guard (a throttle, a hold cap, the redemption lockout, a validation): a 4xx that is
    neither risk's own answer nor a 404, which answers the question asked (a guessed code that does not exist)."""
    status, _, code = answer.partition(" ")
    return status.startswith("4") and status != "404" and code not in ("risk_declined", "challenge_required")


def _median(values: list[int]) -> int | None:
    return sorted(values)[len(values) // 2] if values else None


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def measure(planned: traffic.Plan, sent: Sent, rows: list[tuple[str, str, int]]) -> dict[str, Any]:
    """Per kind: what was sent, how risk answered (from the recorded decisions), what else refused it, and the
    scores of the approved ones (how far below the challenge line what got through was)."""
    kinds = _kinds_by_subject(planned)
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    by_subject: dict[str, Counter[str]] = defaultdict(Counter)
    approved_scores: dict[str, list[int]] = defaultdict(list)
    for subject, outcome, score in rows:
        kind = kinds.get(subject)
        if kind is not None:
            outcomes[kind][outcome] += 1
            by_subject[subject][outcome] += 1
            if outcome == "approve":
                approved_scores[kind].append(score)
    report: dict[str, Any] = {}
    for kind in ("honest", *ATTACK_KINDS):
        answers = sent.answers.get(kind, Counter())
        requests = sum(answers.values())
        decided = outcomes.get(kind, Counter())
        by_risk = sum(decided[outcome] for outcome in STOPPED_BY_RISK)
        refused = sum(n for answer, n in answers.items() if _refused_otherwise(answer))
        report[kind] = {
            "actors": planned.actors.get(kind, 0),
            "requests": requests,
            "decided": sum(decided.values()),
            "approved": decided["approve"],
            "declined": decided["decline"],
            "challenged": decided["challenge"],
            "review": decided["review"],
            "refused_otherwise": refused,
            "answers": dict(sorted(answers.items())),
            "stopped_by_risk_share": _share(by_risk, requests),
            "stopped_share": _share(min(requests, by_risk + refused), requests),
            "approved_score_p50": _median(approved_scores[kind]),
            "approved_score_max": max(approved_scores[kind], default=None),
        }
    honest_subjects = [subject for subject, kind in kinds.items() if kind == "honest"]
    bothered = sum(1 for subject in honest_subjects if any(by_subject[subject][outcome] for outcome in STOPPED_BY_RISK))
    report["honest"]["buyers_challenged"] = bothered
    report["honest"]["buyers_challenged_share"] = _share(bothered, len(honest_subjects))
    return report


async def _train(rt: Runtime, seed: int) -> tuple[dict[str, Any] | None, str | None]:
    async with rt.db.read() as session:
        evidence = await fraud_evidence(session)  # as `kaquan risk train` does; the simulator's labels are verdicts
    try:
        model = await learning.train(rt.db, evidence, actor="simulate", seed=seed)
    except NotEnoughHistory as exc:
        return None, str(exc)
    async with rt.db.transaction() as session:
        await learning.promote(session, model.version, actor="simulate")
    metrics = model.metrics
    return {
        "version": model.version,
        **{key: metrics[key] for key in ("auc", "precision", "recall", "train_rows")},
    }, None


async def run(rt: Runtime, options: Options, progress: Progress = quiet) -> dict[str, Any]:
    load_before = os.getloadavg()
    started = time.perf_counter()
    progress(f"training run (seed {options.seed}) …")
    planned, sent, after = await _run(rt, options.seed, options, progress)
    labelled = await label_rows(rt, planned, after)
    model: dict[str, Any] | None = None
    skipped: str | None = "--no-model: nothing trained; the rules and any model already acting decide"
    if options.train:
        progress(f"training a model on {labelled['fraud'] + labelled['legit']} labelled decisions …")
        model, skipped = await _train(rt, options.seed)
    progress(f"held-out run (seed {options.seed_b}) …")
    held_plan, held_sent, held_after = await _run(rt, options.seed_b, options, progress)
    measured = measure(held_plan, held_sent, await _recorded(rt, held_after))
    attacks = [measured[kind] for kind in ATTACK_KINDS]
    attack_requests = sum(kind["requests"] for kind in attacks)
    stopped = sum(round(kind["stopped_share"] * kind["requests"]) for kind in attacks)
    stopped_by_risk = sum(round(kind["stopped_by_risk_share"] * kind["requests"]) for kind in attacks)
    stopped_share = _share(stopped, attack_requests)
    honest_share = measured["honest"]["buyers_challenged_share"]
    return {
        "db": describe(rt.db.url),
        "redis": bool(rt.settings.redis_url),
        "seed": options.seed,
        "held_out_seed": options.seed_b,
        "honest_buyers": options.honest,
        "attackers_per_kind": options.attackers,
        "training": {
            "requests": sum(sum(c.values()) for c in sent.answers.values()),
            "labelled_fraud": labelled["fraud"],
            "labelled_legit": labelled["legit"],
            "errors_5xx": sent.errors_5xx,
        },
        "model": model,
        "model_skipped": skipped if model is None else None,
        "attacks": {kind: measured[kind] for kind in ATTACK_KINDS},
        "not_simulated": traffic.NOT_SIMULATED,
        "honest": measured["honest"],
        "attack_requests": attack_requests,
        "attack_stopped_share": stopped_share,
        "attack_stopped_by_risk_share": _share(stopped_by_risk, attack_requests),
        "honest_challenged_share": honest_share,
        "goal": {
            "attack_stopped_min": GOAL_STOPPED,
            "honest_challenged_max": GOAL_HONEST_CHALLENGED,
            "met": stopped_share >= GOAL_STOPPED and honest_share <= GOAL_HONEST_CHALLENGED,
        },
        "challenge_at": rt.settings.risk_challenge_at,
        "model_weight": rt.settings.risk_model_weight,
        "errors_5xx": held_sent.errors_5xx,
        "elapsed_s": round(time.perf_counter() - started, 1),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
    }
