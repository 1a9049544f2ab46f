"""`kaquan risk train | models | promote` and `kaquan bench risk`, driven as an operator drives them: a model
trained into shadow with its later-period metrics, listed, promoted by a person with --yes and audited."""

import json

from tests.support.cli import Kaquan, one_line
from tests.support.loops import in_own_loop
from tests.support.risk_history import given_recorded, history

from kaquan.audit import service as audit
from kaquan.kit.db import Database


def given_labelled_history(kaquan: Kaquan, count: int) -> None:
    async def work() -> None:
        db = Database(kaquan.database_url)
        try:
            await given_recorded(db, history(count))
        finally:
            await db.dispose()

    in_own_loop(work)


def audited(kaquan: Kaquan) -> list[tuple[str, str]]:
    async def work() -> list[tuple[str, str]]:
        db = Database(kaquan.database_url)
        try:
            async with db.read() as session:
                return [(entry.action, entry.actor) for entry in await audit.recent(session)]
        finally:
            await db.dispose()

    return in_own_loop(work)


def test_an_operator_trains_a_model_into_shadow_lists_it_and_promotes_it(kaquan: Kaquan) -> None:
    assert json.loads(kaquan.ok("risk", "models", "--json")) == []  # the first start also creates the process keys
    assert "risk_not_enough_history" in one_line(kaquan.refused("risk", "train"))
    given_labelled_history(kaquan, 1200)

    trained = one_line(kaquan.ok("risk", "train", "--seed", "3"))
    assert trained.startswith("model v1 in shadow: AUC 0.")
    [listed] = json.loads(kaquan.ok("risk", "models", "--json"))
    assert (listed["version"], listed["status"]) == (1, "shadow")
    assert listed["metrics"]["auc"] > 0.8 and listed["metrics"]["test_rows"] == 240
    assert "shadow" in kaquan.ok("risk", "models")

    kaquan.refused("risk", "promote", "1", exit_code=2)  # no --yes and no terminal: nothing changes
    assert "risk_model_not_found" in one_line(kaquan.refused("risk", "promote", "7", "--yes"))
    assert "risk model v1 is active" in one_line(kaquan.ok("risk", "promote", "1", "--yes"))
    assert "risk_model_not_promotable" in one_line(kaquan.refused("risk", "promote", "1", "--yes"))
    [promoted] = json.loads(kaquan.ok("risk", "models", "--json"))
    assert promoted["status"] == "active" and promoted["promoted_by"].startswith("cli:")
    actions = [action for action, _ in audited(kaquan)]
    assert "risk.model_trained" in actions and "risk.model_promoted" in actions


def test_bench_risk_ends_with_one_json_line_with_and_without_the_model(kaquan: Kaquan) -> None:
    out = kaquan.ok("bench", "risk", "--decisions", "300", "--history", "3000")
    measured = json.loads(out.strip().splitlines()[-1])
    assert measured["decisions"] == 300
    assert measured["model_auc_later_period"] > 0.8
    for figure in ("without_model_p50_us", "without_model_p99_us", "with_model_p50_us", "with_model_p99_us"):
        assert measured[figure] > 0
    assert measured["with_model_p99_us"] >= measured["with_model_p50_us"]
