"""`kaquan risk …`, driven as an operator drives it: rules added off, tested, switched on; lists kept."""

from tests.support.cli import Kaquan, one_line
from tests.support.loops import in_own_loop

from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.risk.models import RiskDecision


def test_an_operator_adds_tests_and_switches_a_rule(kaquan: Kaquan) -> None:
    kaquan.ok("migrate")
    added = kaquan.ok(
        "risk", "rules", "add", "bulk", "order.quantity >= 10 and sku.high_demand", "--outcome", "decline"
    )
    tested = one_line(kaquan.ok("risk", "rules", "test", "order.quantity >= 10", "--last", "50"))
    kaquan.ok("risk", "rules", "enable", "bulk")
    listed = one_line(kaquan.ok("risk", "rules", "list"))
    kaquan.ok("risk", "rules", "disable", "bulk")

    assert "rule 'bulk' saved, off" in added
    assert "0 of the last 0 decisions hit" in tested
    assert "bulk" in listed and "yes" in listed and "decline" in listed
    assert "no" in one_line(kaquan.ok("risk", "rules", "list"))


def test_a_malformed_rule_is_refused_with_its_column_and_nothing_saved(kaquan: Kaquan) -> None:
    kaquan.ok("risk", "rules", "list")  # the first start creates the process keys
    refused = one_line(kaquan.refused("risk", "rules", "add", "bad", "ip.orders_1m >", "--score", "10"))
    assert "invalid_rule" in refused and "column 15" in refused


def test_an_operator_blocks_and_unblocks_a_prefix(kaquan: Kaquan) -> None:
    assert "prefix 10.9.8.0/24: block" in kaquan.ok(
        "risk", "list", "add", "prefix", "10.9.8.7/24", "--note", "bot farm"
    )
    assert "bot farm" in kaquan.ok("risk", "list", "show")
    kaquan.ok("risk", "list", "remove", "prefix", "10.9.8.0/24")
    assert "risk_list_entry_not_found" in one_line(kaquan.refused("risk", "list", "remove", "prefix", "10.9.8.0/24"))
    assert "bad_input" in one_line(kaquan.refused("risk", "list", "add", "ip", "not-an-ip"))


def test_the_review_queue_lists_held_orders_and_refuses_a_verdict_without_yes_or_an_order(kaquan: Kaquan) -> None:
    kaquan.ok("migrate")
    assert kaquan.ok("risk", "review", "list", "--json").strip() == "[]"
    unconfirmed = one_line(kaquan.refused("risk", "review", "decline", "2612060000000001", exit_code=2))
    unknown = one_line(kaquan.refused("risk", "review", "approve", "2612060000000001", "--yes"))
    too_long = one_line(kaquan.refused("risk", "review", "fraud", "2612060000000001", "--reason", "x" * 301, "--yes"))
    assert "needs confirmation" in unconfirmed and "pass --yes" in unconfirmed
    assert "order_not_found" in unknown
    assert "bad_input" in too_long and "300" in too_long


def given_approved_orders(kaquan: Kaquan, quantities: list[int]) -> None:
    """Shop orders risk control approved this week, as the decision log records them."""

    async def record() -> None:
        db = Database(kaquan.database_url)
        try:
            async with db.transaction() as session:
                session.add_all(
                    RiskDecision(
                        at=clock.now(),
                        action="shop.order",
                        subject=f"ip:198.51.100.{host}",
                        outcome="approve",
                        score=0,
                        reasons=[],
                        features={"order.quantity": quantity},
                    )
                    for host, quantity in enumerate(quantities)
                )
        finally:
            await db.dispose()

    in_own_loop(record)


def test_a_declining_rule_that_would_decline_honest_buyers_goes_on_only_with_yes(kaquan: Kaquan) -> None:
    kaquan.ok("migrate")
    given_approved_orders(kaquan, [1, 1, 1, 6])
    kaquan.ok("risk", "rules", "add", "big", "order.quantity > 5", "--outcome", "decline")
    refused = one_line(kaquan.refused("risk", "rules", "enable", "big"))
    assert "risk_rule_needs_confirmation" in refused and "1 of the last week's 4 approved decisions" in refused
    kaquan.ok("risk", "rules", "enable", "big", "--yes")
    assert "yes" in one_line(kaquan.ok("risk", "rules", "list"))
