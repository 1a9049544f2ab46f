"""`kaquan risk simulate`: honest buyers and attacks through a real server; a table, then one JSON line."""

import json
from collections.abc import Mapping
from typing import Annotated, Any

import typer
from rich.table import Table

from kaquan.bench import simulate as simulator
from kaquan.cli.common import console, run
from kaquan.cli.confirm import YesFlag, confirmed
from kaquan.runtime import Runtime


def _progress(message: str) -> None:
    console.print(message)


def _table(result: Mapping[str, Any]) -> Table:
    rendered = Table("who", "requests", "declined", "challenged", "review", "refused otherwise", "stopped", "by risk")
    for kind, row in {"honest": result["honest"], **result["attacks"]}.items():
        rendered.add_row(
            kind,
            str(row["requests"]),
            str(row["declined"]),
            str(row["challenged"]),
            str(row["review"]),
            str(row["refused_otherwise"]),
            f"{row['stopped_share']:.1%}",
            f"{row['stopped_by_risk_share']:.1%}",
        )
    for kind, why in result["not_simulated"].items():
        rendered.add_row(kind, "not simulated", why, "", "", "", "", "")
    return rendered


def simulate(
    seed: Annotated[int, typer.Option(help="seed of the training run")] = 1,
    held_out_seed: Annotated[int | None, typer.Option(help="seed of the held-out run (default: seed + 1)")] = None,
    honest: Annotated[int, typer.Option(min=1, max=5000, help="honest buyers per run")] = 150,
    attackers: Annotated[int, typer.Option(min=1, max=500, help="attackers of each kind per run")] = 6,
    model: Annotated[
        bool, typer.Option("--model/--no-model", help="train and promote a model on the training run")
    ] = True,
    yes: YesFlag = False,
) -> None:
    """Send honest buyers and attacks to a server of its own (seed A), label what it recorded, train and promote
    a model, then measure a held-out run (seed B): per attack kind the share stopped, and the share of honest
    buyers challenged. It promotes the model it trains: run it on a staging database, not the shop's."""
    if held_out_seed is not None and held_out_seed == seed:
        raise typer.BadParameter(
            "must differ from --seed: the held-out run is measured on traffic not trained on",
            param_hint="--held-out-seed",
        )
    confirmed(
        "add simulated SKUs, stock and a clerk to this database"
        + (" and make the risk model trained on them act on every decision" if model else ""),
        yes=yes,
    )
    options = simulator.Options(seed=seed, held_out_seed=held_out_seed, honest=honest, attackers=attackers, train=model)

    async def work(rt: Runtime) -> dict[str, Any]:
        return await simulator.run(rt, options, _progress)

    result = run(work)
    console.print(_table(result))
    goal = result["goal"]
    console.print(
        f"attack requests stopped {result['attack_stopped_share']:.1%} (goal ≥ {goal['attack_stopped_min']:.0%}), "
        f"honest buyers challenged {result['honest_challenged_share']:.1%} "
        f"(goal ≤ {goal['honest_challenged_max']:.0%}): " + ("met" if goal["met"] else "NOT met")
    )
    print(json.dumps(result))
