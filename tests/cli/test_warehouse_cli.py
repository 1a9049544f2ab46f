"""`kaquan warehouse …`: add and list warehouses, move stock, keep a warehouse stocked by a refill rule."""

from pathlib import Path

from tests.support.cli import Kaquan, given_stock, one_line


def levels(kaquan: Kaquan) -> dict[str, tuple[int, int]]:
    """(imported, available) per warehouse; every row must add up."""
    rows = kaquan.stock()
    assert all(row.adds_up for row in rows), rows
    return {row.warehouse: (row.imported, row.available) for row in rows}


def test_warehouses_are_added_and_listed(kaquan: Kaquan) -> None:
    kaquan.ok("migrate")

    added = kaquan.ok("warehouse", "add", "backup", "--name", "Backup 备仓")
    consigned = kaquan.ok(
        "warehouse", "add", "agent-42", "--name", "Agent 42", "--kind", "consignment", "--consignee", "Agent Zhang"
    )
    listed = one_line(kaquan.ok("warehouse", "list"))

    assert "warehouse backup (own) added" in one_line(added)
    assert "warehouse agent-42 (consignment) added" in one_line(consigned)
    assert "1 main Main warehouse 主仓 own" in listed
    assert "2 backup Backup 备仓 own" in listed
    assert "3 agent-42 Agent 42 consignment Agent Zhang" in listed


def test_a_duplicate_or_malformed_warehouse_is_refused_and_changes_nothing(kaquan: Kaquan) -> None:
    kaquan.ok("warehouse", "list")  # the first start also creates the keys

    duplicate = kaquan.refused("warehouse", "add", "main", "--name", "Another")
    malformed = kaquan.refused("warehouse", "add", "has space", "--name", "X")

    assert "(warehouse_exists)" in one_line(duplicate)
    assert "(bad_warehouse)" in one_line(malformed)


def test_stock_moves_between_warehouses_and_the_transfer_is_listed(kaquan: Kaquan, tmp_path: Path) -> None:
    given_stock(kaquan, tmp_path, 20)
    kaquan.ok("warehouse", "add", "backup", "--name", "Backup")

    said = kaquan.ok(
        "warehouse", "move", "--sku", "VIDEO-1M", "--from", "main", "--to", "backup", "--units", "8", "--reason", "x"
    )

    assert "transfer 1: 8 units of SKU 1 moved from main to backup" in one_line(said)
    assert levels(kaquan) == {"main": (12, 12), "backup": (8, 8)}
    listed = one_line(kaquan.ok("warehouse", "transfers", "--sku", "VIDEO-1M"))
    assert "main backup 8 cli" in listed


def test_a_transfer_of_more_than_available_or_to_nowhere_is_refused_and_changes_nothing(
    kaquan: Kaquan, tmp_path: Path
) -> None:
    given_stock(kaquan, tmp_path, 5)
    kaquan.ok("warehouse", "add", "backup", "--name", "Backup")
    move = ("warehouse", "move", "--sku", "VIDEO-1M", "--from", "main", "--reason", "x")

    too_many = kaquan.refused(*move, "--to", "backup", "--units", "6")
    nowhere = kaquan.refused(*move, "--to", "nowhere", "--units", "1")
    same = kaquan.refused(*move, "--to", "main", "--units", "1")
    negative = kaquan.refused(*move, "--to", "backup", "--units", "-1")

    assert "(out_of_stock)" in one_line(too_many)
    assert "6 wanted from warehouse 'main', 5 available" in one_line(too_many)
    assert "(warehouse_not_found)" in one_line(nowhere)
    assert "(same_warehouse)" in one_line(same)
    assert "(bad_units)" in one_line(negative)


def test_a_refill_rule_keeps_a_warehouse_stocked_until_disabled(kaquan: Kaquan, tmp_path: Path) -> None:
    given_stock(kaquan, tmp_path, 30)
    kaquan.ok("warehouse", "add", "backup", "--name", "Backup")
    rule = ("--sku", "VIDEO-1M", "--warehouse", "backup", "--source", "main")

    added = kaquan.ok("warehouse", "rule", "add", *rule, "--threshold", "5", "--refill", "10")
    first = kaquan.ok("warehouse", "rebalance")
    second = kaquan.ok("warehouse", "rebalance")
    listed = one_line(kaquan.ok("warehouse", "rule", "list"))
    disabled = kaquan.ok("warehouse", "rule", "disable", "1")

    assert "refill rule 1: below 5 in backup, move up to 10 from main" in one_line(added)
    assert "1 refill transfer(s) made" in one_line(first)
    assert "0 refill transfer(s) made" in one_line(second)
    assert "1 1 backup main 5 10 yes" in listed
    assert "refill rule 1 disabled" in one_line(disabled)
    assert levels(kaquan) == {"main": (20, 20), "backup": (10, 10)}
    assert "1 1 backup main 5 10 no" in one_line(kaquan.ok("warehouse", "rule", "list"))


def test_a_bad_refill_rule_is_refused_and_changes_nothing(kaquan: Kaquan, tmp_path: Path) -> None:
    given_stock(kaquan, tmp_path, 5)
    rule = ("warehouse", "rule", "add", "--sku", "VIDEO-1M", "--warehouse", "main", "--refill", "10")

    same = kaquan.refused(*rule, "--source", "main", "--threshold", "5")
    unknown = kaquan.refused(*rule, "--source", "nowhere", "--threshold", "5")
    missing = kaquan.refused("warehouse", "rule", "disable", "7")

    assert "(same_warehouse)" in one_line(same)
    assert "(warehouse_not_found)" in one_line(unknown)
    assert "(refill_rule_not_found)" in one_line(missing)
