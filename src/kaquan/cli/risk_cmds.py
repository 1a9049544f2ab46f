"""`kaquan risk …`: risk rules (add, list, test, enable, disable), the allow/block lists, the review queue
and the learned models (train, models, promote) (docs/risk.md).

A running server picks changes up within KAQUAN_RISK_REFRESH_S seconds.
"""

import getpass
from typing import Annotated, Any

import typer

from kaquan.cli.common import console, run
from kaquan.cli.confirm import YesFlag, confirmed
from kaquan.cli.output import JsonFlag, emit_json, show, table
from kaquan.cli.risk_simulate import simulate
from kaquan.kit.money import display
from kaquan.payments import review
from kaquan.payments.fraud import fraud_evidence
from kaquan.risk import FEATURES, learning, lists, rules
from kaquan.runtime import Runtime

risk_app = typer.Typer(
    help="Risk control: rules, allow/block lists, the review queue and learned models.", no_args_is_help=True
)
rules_app = typer.Typer(help="Rules scored on every order attempt.", no_args_is_help=True)
list_app = typer.Typer(help="Allow and block lists (ip, prefix, device, contact, account).", no_args_is_help=True)
risk_app.add_typer(rules_app, name="rules")
review_app = typer.Typer(
    help="Orders held for review: list them, approve, decline or mark as fraud.", no_args_is_help=True
)
risk_app.add_typer(list_app, name="list")
risk_app.add_typer(review_app, name="review")
ACTOR = "cli"


@rules_app.command("add")
def add_rule(
    name: Annotated[str, typer.Argument(help="a unique name, shown in decisions' reasons")],
    expression: Annotated[str, typer.Argument(help="e.g. 'ip.orders_1m > 5 and sku.high_demand'")],
    score: Annotated[int, typer.Option(min=-100, max=100, help="added to the score when the rule hits")] = 0,
    outcome: Annotated[str | None, typer.Option(help="challenge, review or decline, whatever the score")] = None,
    actions: Annotated[str, typer.Option(help="* or e.g. shop.order,flash.purchase")] = "*",
    enable: Annotated[
        bool, typer.Option("--enable", help="switch it on at once (default: off; test it first)")
    ] = False,
    yes: YesFlag = False,
) -> None:
    """Save a rule; a malformed expression is refused with the column of the problem."""

    async def work(rt: Runtime) -> None:
        async with rt.db.transaction() as session:
            await rules.add(
                session,
                name=name,
                expression=expression,
                actions=actions,
                score=score,
                outcome=outcome,
                enabled=enable,
                actor=ACTOR,
                guard=_guard(rt, yes),
            )

    run(work)
    console.print(f"rule {name!r} saved, {'on' if enable else 'off'}")


@rules_app.command("list")
def list_rules(as_json: JsonFlag = False) -> None:
    """Every rule, on or off."""

    async def work(rt: Runtime) -> list[dict[str, object]]:
        async with rt.db.read() as session:
            return [rules.describe(rule) for rule in await rules.all_rules(session)]

    found = run(work)
    if as_json:
        emit_json(found)
        return
    rendered = table("name", "on", "actions", "effect", "expression")
    for rule in found:
        effect = str(rule["outcome"]) if rule["outcome"] else f"{rule['score']:+d}"
        rendered.add_row(
            str(rule["name"]), "yes" if rule["enabled"] else "no", str(rule["actions"]), effect, str(rule["expression"])
        )
    show(rendered)


@rules_app.command("test")
def test_rule(
    expression: Annotated[str, typer.Argument(help="the expression to backtest")],
    last: Annotated[int, typer.Option(min=1, max=rules.MAX_BACKTEST, help="recent decisions to read")] = 1000,
    actions: Annotated[str, typer.Option(help="* or e.g. shop.order")] = "*",
) -> None:
    """How many of the last N recorded decisions the expression would have hit."""

    async def work(rt: Runtime) -> rules.Backtest:
        async with rt.db.read() as session:
            return await rules.backtest(session, expression, actions=actions, last=last)

    found = run(work)
    console.print(f"{found.hits} of the last {found.examined} decisions hit ({found.share:.1%})")
    for outcome, hits in sorted(found.hits_by_outcome.items()):
        console.print(f"  answered {outcome}: {hits}")


def _guard(rt: Runtime, confirmed: bool) -> rules.HonestGuard:
    """--yes confirms a declining rule that would have declined too many of the last week's approved decisions."""
    settings = rt.settings
    return rules.HonestGuard(settings.risk_decline_at, settings.risk_rule_honest_decline_bp, confirmed=confirmed)


def _switch(name: str, enabled: bool, *, yes: bool = False) -> None:
    async def work(rt: Runtime) -> None:
        async with rt.db.transaction() as session:
            await rules.set_enabled(session, name, enabled, actor=ACTOR, guard=_guard(rt, yes))

    run(work)
    console.print(f"rule {name!r} {'on' if enabled else 'off'}")


@rules_app.command("enable")
def enable_rule(name: str, yes: YesFlag = False) -> None:
    """Switch a rule on; a declining rule that would have declined too many honest buyers last week needs --yes."""
    _switch(name, True, yes=yes)


@rules_app.command("disable")
def disable_rule(name: str) -> None:
    """Switch a rule off."""
    _switch(name, False)


@rules_app.command("features")
def show_features(as_json: JsonFlag = False) -> None:
    """Every name a rule may use."""
    if as_json:
        emit_json(FEATURES)
        return
    rendered = table("feature", "meaning")
    for name, meaning in FEATURES.items():
        rendered.add_row(name, meaning)
    show(rendered)


@list_app.command("add")
def add_entry(
    kind: Annotated[str, typer.Argument(help="ip, prefix, device, contact or account")],
    value: Annotated[str, typer.Argument(help="as written, or the digest shown in decisions")],
    verdict: Annotated[str, typer.Option(help="allow or block")] = "block",
    note: Annotated[str, typer.Option(help="why (kept with the entry)")] = "",
) -> None:
    """Put a subject on the allow or block list."""

    async def work(rt: Runtime) -> str:
        async with rt.db.transaction() as session:
            entry = await lists.add(session, kind, value, verdict, note=note, actor=ACTOR)
        return f"{entry.kind} {entry.value}: {entry.verdict}"

    console.print(run(work))


@list_app.command("remove")
def remove_entry(kind: str, value: str) -> None:
    """Take a subject off the lists."""

    async def work(rt: Runtime) -> None:
        async with rt.db.transaction() as session:
            await lists.remove(session, kind, value, actor=ACTOR)

    run(work)
    console.print(f"{kind} {value} removed")


@list_app.command("show")
def show_entries(as_json: JsonFlag = False) -> None:
    """Every allow and block entry."""

    async def work(rt: Runtime) -> list[tuple[str, str, str, str]]:
        async with rt.db.read() as session:
            return [(e.kind, e.value, e.verdict, e.note) for e in await lists.entries(session)]

    found = run(work)
    if as_json:
        emit_json([dict(zip(("kind", "value", "verdict", "note"), row, strict=True)) for row in found])
        return
    rendered = table("kind", "value", "verdict", "note")
    for row in found:
        rendered.add_row(*row)
    show(rendered)


@review_app.command("list")
def list_held(
    limit: Annotated[int, typer.Option(min=1, max=500, help="how many, oldest first")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """Orders held for review, oldest first."""

    async def work(rt: Runtime) -> list[dict[str, object]]:
        async with rt.db.read() as session:
            held = await review.queue(session, limit=limit)
        return [
            {
                "number": h.order.number,
                "order_status": h.order.status,
                "total": display(h.order.total_minor, h.order.currency),
                "currency": h.order.currency,
                "contact": h.order.contact,
                "score": h.review.score,
                "reasons": h.review.reasons,
                "opened_at": h.review.opened_at.isoformat(),
            }
            for h in held
        ]

    found = run(work)
    if as_json:
        emit_json(found)
        return
    rendered = table("order", "status", "total", "contact", "score", "reasons", "held since")
    for item in found:
        rendered.add_row(
            str(item["number"]),
            str(item["order_status"]),
            f"{item['total']} {item['currency']}",
            str(item["contact"]),
            str(item["score"]),
            ", ".join(item["reasons"]),  # type: ignore[arg-type]
            str(item["opened_at"]),
        )
    show(rendered)


WHAT_IT_DOES = {
    "approve": "approve order {number}: it is delivered (now if paid, else when paid)",
    "decline": "decline order {number}: it is cancelled if unpaid, else refunded in full",
    "fraud": "mark order {number} as fraud: declined and refunded, its contact, device and IP blocked",
}


def _verdict(number: str, verdict: review.Verdict, reason: str, yes: bool) -> None:
    confirmed(WHAT_IT_DOES[verdict].format(number=number), yes=yes)

    async def work(rt: Runtime) -> review.VerdictResult:
        async with rt.db.transaction() as session:
            return await review.give_verdict(rt.db, session, number, verdict, actor=ACTOR, reason=reason)

    done = run(work)
    if done.replayed:
        console.print(f"order {number} was {done.verdict} already; nothing changed")
        return
    console.print(f"order {number}: {done.verdict}, now {done.order_status}")
    if done.refund_no:
        console.print(f"  refund {done.refund_no} requested")
    for key in done.blocked:
        console.print(f"  blocked {key}")


Reason = Annotated[str, typer.Option(help="why, kept in the audit trail (at most 300 characters)")]


@review_app.command("approve")
def approve_held(number: str, reason: Reason = "", yes: YesFlag = False) -> None:
    """Let a held order through: a paid one is delivered now, an unpaid one when it is paid."""
    _verdict(number, "approve", reason, yes)


@review_app.command("decline")
def decline_held(number: str, reason: Reason = "", yes: YesFlag = False) -> None:
    """Refuse a held order: cancelled if unpaid, refunded in full if paid."""
    _verdict(number, "decline", reason, yes)


@review_app.command("fraud")
def fraud_held(number: str, reason: Reason = "", yes: YesFlag = False) -> None:
    """Decline a held order as fraud: also block its contact, device and IP and label the decision fraud."""
    _verdict(number, "fraud", reason, yes)


def _metric(metrics: dict[str, Any], name: str) -> str:
    value = metrics.get(name)
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


@risk_app.command("train")
def train_model(
    seed: Annotated[int, typer.Option(help="LightGBM's seed: the same history and seed give the same model")] = 0,
) -> None:
    """Train a model on the labelled decision history into shadow; measured on the later 20 %."""

    async def work(rt: Runtime) -> dict[str, Any]:
        async with rt.db.read() as session:
            evidence = await fraud_evidence(session)
        return learning.describe(await learning.train(rt.db, evidence, actor=f"cli:{getpass.getuser()}", seed=seed))

    model = run(work)
    metrics = model["metrics"]
    auc, precision = _metric(metrics, "auc"), _metric(metrics, "precision")
    console.print(
        f"model v{model['version']} in shadow: AUC {auc}, precision {precision},"
        f" recall {_metric(metrics, 'recall')} on {metrics['test_rows']} later decisions"
        f" ({metrics['test_fraud']} fraud) from {metrics['test_from']}",
        highlight=False,
    )


@risk_app.command("models")
def list_models(as_json: JsonFlag = False) -> None:
    """Every model, newest first, with its metrics on its held-out later period."""

    async def work(rt: Runtime) -> list[dict[str, Any]]:
        async with rt.db.read() as session:
            return [learning.describe(model) for model in await learning.all_models(session)]

    found = run(work)
    if as_json:
        emit_json(found)
        return
    rendered = table("version", "status", "trained", "AUC", "precision", "recall", "tested on", "promoted by")
    for model in found:
        metrics = model["metrics"]
        rendered.add_row(
            str(model["version"]),
            str(model["status"]),
            str(model["trained_at"])[:16],
            _metric(metrics, "auc"),
            _metric(metrics, "precision"),
            _metric(metrics, "recall"),
            f"{metrics.get('test_rows', 0)} ({metrics.get('test_fraud', 0)} fraud)",
            str(model["promoted_by"] or "-"),
        )
    show(rendered)


@risk_app.command("promote")
def promote_model(
    version: Annotated[int, typer.Argument(help="the model version to make active")], yes: YesFlag = False
) -> None:
    """Make a model act on decisions (the active one retires); audited as risk.model_promoted."""
    confirmed(f"make risk model v{version} act on every decision", yes=yes)

    async def work(rt: Runtime) -> None:
        async with rt.db.transaction() as session:
            await learning.promote(session, version, actor=f"cli:{getpass.getuser()}")

    run(work)
    console.print(f"risk model v{version} is active; servers use it within KAQUAN_RISK_REFRESH_S seconds")


risk_app.command("simulate")(simulate)
