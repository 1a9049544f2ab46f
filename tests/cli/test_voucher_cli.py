"""`kaquan vouchers generate`: codes written once to a private file, only counts on the terminal."""

import stat
from pathlib import Path

from sqlalchemy import func, select
from tests.support.cli import Kaquan, one_line
from tests.support.loops import in_own_loop

from kaquan import runtime as runtime_module
from kaquan.inventory.models import Code
from kaquan.kit.config import Settings
from kaquan.redemption.vouchers import ALPHABET, normalize


def given_voucher_catalog(kaquan: Kaquan, code: str = "GIFT-50") -> None:
    kaquan.ok("product", "create", "--name", "Gift", "--kind", "voucher")
    kaquan.ok("sku", "create", "--product", "1", "--code", code, "--name", "Gift 50", "--price", "5000")


def stored(kaquan: Kaquan, codes: list[str]) -> int:
    """How many of `codes` the inventory holds, found by fingerprint with the master key in var/."""

    async def work() -> int:
        settings = Settings(var_dir=kaquan.var_dir, database_url=kaquan.database_url)
        rt = await runtime_module.start(settings)
        try:
            fingerprints = [rt.vault.fingerprints.of(None, normalize(code)) for code in codes]
            async with rt.db.read() as session:
                found = select(func.count()).select_from(Code).where(Code.fingerprint.in_(fingerprints))
                return int((await session.execute(found)).scalar_one())
        finally:
            await rt.close()

    return in_own_loop(work)


def test_generate_writes_the_codes_once_to_a_private_file_and_only_counts_to_the_terminal(
    kaquan: Kaquan, tmp_path: Path
) -> None:
    given_voucher_catalog(kaquan)
    out = tmp_path / "gift.txt"

    result = kaquan("vouchers", "generate", "--sku", "GIFT-50", "--count", "25", "--out", str(out))

    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    codes = out.read_text().splitlines()
    assert len(codes) == len(set(codes)) == 25
    for code in codes:
        groups = code.split("-")
        assert [len(g) for g in groups] == [5, 5, 5, 5]
        assert set("".join(groups)) <= set(ALPHABET)
        assert code not in result.output and normalize(code) not in result.output
    said = one_line(result.stdout)
    assert "batch 1" in said and "25 vouchers" in said and str(out) in said
    [row] = kaquan.stock()
    assert (row.imported, row.available) == (25, 25)
    assert stored(kaquan, codes) == 25


def test_an_existing_file_is_never_overwritten(kaquan: Kaquan, tmp_path: Path) -> None:
    given_voucher_catalog(kaquan)
    out = tmp_path / "old.txt"
    out.write_text("LIVE-CODES-FROM-LAST-TIME\n")

    stderr = kaquan.refused("vouchers", "generate", "--sku", "GIFT-50", "--count", "5", "--out", str(out), exit_code=2)

    assert "exists" in one_line(stderr)
    assert out.read_text() == "LIVE-CODES-FROM-LAST-TIME\n"


def test_a_sku_that_is_not_a_voucher_is_refused_and_leaves_no_file(kaquan: Kaquan, tmp_path: Path) -> None:
    kaquan.ok("product", "create", "--name", "Video", "--kind", "membership")
    kaquan.ok("sku", "create", "--product", "1", "--code", "VIDEO-1M", "--name", "Monthly", "--price", "1990")
    out = tmp_path / "nope.txt"

    stderr = kaquan.refused("vouchers", "generate", "--sku", "VIDEO-1M", "--count", "5", "--out", str(out))

    assert "not_a_voucher_sku" in stderr
    assert not out.exists()


def test_an_unknown_sku_is_refused_and_leaves_no_file(kaquan: Kaquan, tmp_path: Path) -> None:
    given_voucher_catalog(kaquan)
    out = tmp_path / "nope.txt"

    kaquan.refused("vouchers", "generate", "--sku", "NO-SUCH", "--count", "5", "--out", str(out))

    assert not out.exists()


def test_a_count_out_of_range_is_a_usage_error(kaquan: Kaquan, tmp_path: Path) -> None:
    given_voucher_catalog(kaquan)

    for count in ("0", "-3", "1000001"):
        kaquan.refused(
            "vouchers", "generate", "--sku", "GIFT-50", "--count", count, "--out", str(tmp_path / "x.txt"), exit_code=2
        )
    assert not (tmp_path / "x.txt").exists()
