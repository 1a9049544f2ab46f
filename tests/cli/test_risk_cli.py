"""`kaquan risk …`, driven as an operator drives it: rules added off, tested, switched on; lists kept."""

from tests.support.cli import Kaquan, one_line


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
