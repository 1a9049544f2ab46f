"""`kaquan risk simulate` at its smallest: attacks and honest buyers really sent to a server and really decided."""

import json

from tests.support.cli import Kaquan

from kaquan.bench.traffic import ATTACK_KINDS

ROW = {
    "actors",
    "requests",
    "decided",
    "approved",
    "declined",
    "challenged",
    "review",
    "refused_otherwise",
    "answers",
    "stopped_share",
    "stopped_by_risk_share",
}


def test_the_smallest_run_sends_every_attack_and_reports_what_the_server_decided(kaquan: Kaquan) -> None:
    out = kaquan.ok("risk", "simulate", "--honest", "2", "--attackers", "1", "--seed", "5", "--yes")

    *shown, last = out.strip().splitlines()
    result = json.loads(last)
    assert (result["seed"], result["held_out_seed"]) == (5, 6)
    assert set(result["attacks"]) == set(ATTACK_KINDS)
    assert "coupon_farming" in result["not_simulated"]
    assert any("coupon_farming" in line for line in shown)  # said in the table too, not faked
    for kind, row in {"honest": result["honest"], **result["attacks"]}.items():
        assert set(row) >= ROW, kind
        assert row["requests"] > 0, kind  # sent …
        assert row["decided"] == row["requests"], kind  # … and each one decided by the server's risk engine
        assert sum(row["answers"].values()) == row["requests"], kind
        assert 0.0 <= row["stopped_by_risk_share"] <= row["stopped_share"] <= 1.0, kind
    assert result["honest"]["buyers_challenged"] <= 2
    assert result["attack_requests"] == sum(row["requests"] for row in result["attacks"].values())
    assert result["errors_5xx"] == 0 and result["training"]["errors_5xx"] == 0
    # The training run's decisions were labelled by who sent them: both kinds are there.
    assert result["training"]["labelled_fraud"] > 0 and result["training"]["labelled_legit"] > 0
    # Two buyers and four attackers are far too few to train on: said, not hidden.
    assert result["model"] is None and "cannot train" in result["model_skipped"]
    assert set(result["goal"]) == {"attack_stopped_min", "honest_challenged_max", "met"}
    assert isinstance(result["goal"]["met"], bool)


def test_the_held_out_seed_must_differ(kaquan: Kaquan) -> None:
    said = kaquan.refused("risk", "simulate", "--seed", "3", "--held-out-seed", "3", exit_code=2)
    assert "must differ" in said


def test_it_asks_before_writing_to_the_database_and_promoting_a_model(kaquan: Kaquan) -> None:
    kaquan.ok("migrate")
    said = kaquan.refused("risk", "simulate", "--honest", "2", "--attackers", "1", exit_code=2)
    assert "needs confirmation" in said and "risk model" in said
