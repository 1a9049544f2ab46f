"""`kaquan flash …` and `kaquan serve --workers`, driven as an operator drives them."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support.cli import Kaquan, given_stock, one_line


def in_hours(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def test_an_operator_schedules_lists_shows_and_ends_a_flash_sale(kaquan: Kaquan, tmp_path: Path) -> None:
    given_stock(kaquan, tmp_path, 10)

    created = kaquan.ok(
        "flash",
        "create",
        "--sku",
        "VIDEO-1M",
        "--ends-at",
        in_hours(1),
        "--stock",
        "6",
        "--price",
        "990",
        "--limit",
        "2",
    )
    listed = one_line(kaquan.ok("flash", "list"))
    shown = json.loads(kaquan.ok("flash", "show", "1"))
    [during] = kaquan.stock()
    ended = kaquan.ok("flash", "end", "1", "--yes")

    assert "flash-sale event 1 live: 6 units of SKU 1" in one_line(created)
    assert "live" in listed and "¥9.90" in listed
    assert (shown["status"], shown["allotted"], shown["held"], shown["sold"], shown["per_buyer_limit"]) == (
        "live",
        6,
        6,
        0,
        2,
    )
    assert (during.available, during.reserved) == (4, 6)
    assert "flash-sale event 1 ended: 6 unit(s) back in stock" in one_line(ended)
    [after] = kaquan.stock()
    assert (after.available, after.reserved) == (10, 0)
    assert kaquan.state()["audit_entries"] >= 2


def test_a_future_flash_sale_takes_no_stock_yet(kaquan: Kaquan, tmp_path: Path) -> None:
    given_stock(kaquan, tmp_path, 10)

    out = kaquan.ok(
        "flash",
        "create",
        "--sku",
        "VIDEO-1M",
        "--starts-at",
        in_hours(1),
        "--ends-at",
        in_hours(2),
        "--stock",
        "6",
        "--price",
        "990",
        "--name",
        "Double 11",
    )

    assert "flash-sale event 1 scheduled" in one_line(out)
    assert "Double 11" in one_line(kaquan.ok("flash", "list"))
    [row] = kaquan.stock()
    assert row.available == 10


def test_bad_flash_sales_are_refused_and_change_nothing(kaquan: Kaquan, tmp_path: Path) -> None:
    given_stock(kaquan, tmp_path, 10)
    base = ["flash", "create", "--sku", "VIDEO-1M", "--price", "990"]

    too_many = kaquan.refused(*base, "--ends-at", in_hours(1), "--stock", "11")
    naive = kaquan.refused(*base, "--ends-at", "2030-01-01T00:00:00", "--stock", "1", exit_code=2)
    nothing = kaquan.refused(*base, "--ends-at", in_hours(1), "--stock", "0", exit_code=2)
    unknown = kaquan.refused("flash", "end", "99", "--yes")

    assert "out_of_stock" in one_line(too_many) and "11 wanted, 10 available" in one_line(too_many)
    assert "needs a time zone" in one_line(naive)
    assert "stock" in one_line(nothing)
    assert "event_not_found" in one_line(unknown)


def test_several_workers_without_redis_are_refused_while_a_flash_sale_is_scheduled(
    kaquan: Kaquan, tmp_path: Path
) -> None:
    given_stock(kaquan, tmp_path, 10)
    kaquan.ok(
        "flash",
        "create",
        "--sku",
        "VIDEO-1M",
        "--starts-at",
        in_hours(1),
        "--ends-at",
        in_hours(2),
        "--stock",
        "3",
        "--price",
        "990",
    )

    refused = kaquan.refused("serve", "--workers", "2", exit_code=2)

    assert "1 flash-sale event(s) are scheduled or live" in one_line(refused)
    assert "KAQUAN_REDIS_URL" in one_line(refused)


def test_events_require_verified_buyers_by_default_once_the_shop_can_send_codes(kaquan: Kaquan, tmp_path: Path) -> None:
    given_stock(kaquan, tmp_path, 10)
    base = ["flash", "create", "--sku", "VIDEO-1M", "--price", "990", "--ends-at", in_hours(1), "--stock", "2"]

    impossible = kaquan.refused(*base, "--verified")
    without_channel = kaquan.ok(*base)
    with_codes = kaquan(*base, "--per-ip-limit", "3", env={"KAQUAN_DEV_CONTACT_CODES": "1"})
    opted_out = kaquan(*base, "--unverified", env={"KAQUAN_DEV_CONTACT_CODES": "1"})

    assert "invalid_event" in one_line(impossible) and "KAQUAN_SMTP_HOST" in one_line(impossible)
    assert "buyers are NOT verified; at most 1 per buyer, 10 per address, 2 per device" in one_line(without_channel)
    assert with_codes.exit_code == 0, with_codes.output
    assert "buyers must verify a contact; at most 1 per buyer, 3 per address" in one_line(with_codes.stdout)
    assert opted_out.exit_code == 0 and "NOT verified" in one_line(opted_out.stdout)
    shown = json.loads(kaquan.ok("flash", "show", "2"))
    assert (shown["requires_verified_buyer"], shown["per_ip_limit"], shown["per_device_limit"]) == (True, 3, 2)
