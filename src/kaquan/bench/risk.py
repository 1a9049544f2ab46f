"""`kaquan bench risk`: one decision's cost in process, without and with a learned model.

The model is trained on synthetic labelled history (`synthetic_history`: a planted pattern — fresh
devices that submit within a second from a busy address are mostly abuse — among random traffic) and
served by a decision point of the bench's own (`RiskEngine.pin`), so the bench never changes which
model acts in the database it runs on; its decisions are recorded there like any others.
"""

import os
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from kaquan.kit import clock
from kaquan.kit.db import describe
from kaquan.risk import RiskContext, RiskEngine, learning
from kaquan.risk.expressions import Value
from kaquan.risk.learning import Example
from kaquan.risk.scoring import TreeModel
from kaquan.runtime import Runtime


def planted(features: dict[str, Value]) -> bool:
    """The pattern the model must find."""
    submit_ms, ip_hour = features.get("page.submit_ms"), features.get("ip.orders_1h")
    return (
        features.get("device.new") is True
        and isinstance(submit_ms, int)
        and submit_ms < 1200
        and isinstance(ip_hour, int)
        and ip_hour >= 4
    )


def synthetic_features(rng: random.Random) -> dict[str, Value]:
    abusive = rng.random() < 0.15
    new_device = abusive or rng.random() < 0.3
    ip_hour = rng.randint(4, 40) if abusive else rng.choice((1, 1, 1, 2, 2, 3, 5, 8))
    return {
        "request.action": rng.choice(("shop.order", "shop.order", "flash.purchase")),
        "order.quantity": rng.randint(1, 5) if abusive else rng.choice((1, 1, 1, 2)),
        "sku.high_demand": rng.random() < 0.2,
        "device.new": new_device,
        "holds.unpaid_orders": rng.randint(0, 3),
        "holds.unpaid_units": rng.randint(0, 6),
        "page.submit_ms": rng.randint(150, 1100) if abusive else rng.randint(900, 60_000),
        "ip.orders_1m": rng.randint(1, 3),
        "ip.orders_1h": ip_hour,
        "ip.orders_24h": ip_hour + rng.randint(0, 20),
        "prefix.orders_1h": ip_hour + rng.randint(0, 50),
        "device.orders_1h": rng.randint(1, 4),
        "contact.orders_24h": rng.randint(1, 6),
        "sku.orders_1h": rng.randint(1, 500),
    }


def synthetic_history(count: int, *, seed: int, start: datetime, days: int = 28) -> list[Example]:
    """`count` labelled decisions spread over `days` from `start`, oldest first: the planted pattern is fraud
    90 % of the time, everything else 2 % (deterministic under `seed`)."""
    rng = random.Random(seed)  # noqa: S311  (synthetic data, deterministic on purpose)
    step = timedelta(days=days) / count
    examples = []
    for i in range(count):
        features = synthetic_features(rng)
        fraud = rng.random() < (0.9 if planted(features) else 0.02)
        examples.append(Example(start + step * i, features, fraud))
    return examples


def _contexts(count: int, rng: random.Random) -> list[RiskContext]:
    return [
        RiskContext(
            "shop.order",
            ip=f"198.51.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            device=f"bench-device-{rng.randint(0, 5000)}",
            contact=f"bench{rng.randint(0, 5000)}@example.com",
            sku="BENCH-RISK",
            quantity=rng.randint(1, 3),
            submit_ms=rng.randint(200, 30_000),
        )
        for _ in range(count)
    ]


def _percentile(sorted_ns: list[int], share: float) -> float:
    return round(sorted_ns[min(len(sorted_ns) - 1, int(len(sorted_ns) * share))] / 1000, 1)


async def _timed(engine: RiskEngine, contexts: list[RiskContext]) -> tuple[list[int], list[int]]:
    """Each decision's wall time and this thread's CPU time, in ns, sorted. The CPU time is the decision's own
    cost; the wall time adds whatever else ran meanwhile (the recording's writer thread holding the GIL,
    other processes on a busy machine)."""
    wall, cpu = [], []
    for context in contexts:
        started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
        await engine.decide(context)
        cpu.append(time.thread_time_ns() - started_cpu)
        wall.append(time.perf_counter_ns() - started)
    return sorted(wall), sorted(cpu)


def _figures(prefix: str, timed: tuple[list[int], list[int]]) -> dict[str, float]:
    wall, cpu = timed
    return {
        f"{prefix}_p50_us": _percentile(cpu, 0.5),
        f"{prefix}_p99_us": _percentile(cpu, 0.99),
        f"{prefix}_wall_p50_us": _percentile(wall, 0.5),
        f"{prefix}_wall_p99_us": _percentile(wall, 0.99),
    }


async def run(rt: Runtime, decisions: int, progress: Callable[[str], None], *, history: int) -> dict[str, object]:
    progress(f"training a model on {history} synthetic decisions …")
    fitted = learning.fit(synthetic_history(history, seed=7, start=clock.now() - timedelta(days=28)), seed=7)
    model = TreeModel(0, fitted.feature_names, fitted.trees)
    rng = random.Random(11)  # noqa: S311  (synthetic traffic, the same every run)
    engine = rt.risk
    await _timed(engine, _contexts(200, rng))  # warm the caches and the policy
    progress(f"{decisions} decisions without a model …")
    without = await _timed(engine, _contexts(decisions, rng))
    engine.pin(learning.Serving(model, model, fallback=False))  # active and shadow: both are scored
    progress(f"{decisions} decisions with the model active and in shadow …")
    with_model = await _timed(engine, _contexts(decisions, rng))
    await engine.log.flush()
    return {
        "db": describe(rt.db.url),
        "counters": "redis" if rt.risk_redis is not None else "database",
        "decisions": decisions,
        "history": history,
        "trees": len(fitted.trees),
        "model_auc_later_period": fitted.metrics["auc"],
        **_figures("without_model", without),
        **_figures("with_model", with_model),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
