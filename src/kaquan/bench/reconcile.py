"""`kaquan bench reconcile`: one million WeChat Pay bill lines imported and matched against one million payments.

Setup (not timed): payments and refunds stored in bulk through
`payments.records` (no checkout: the bench measures reconciliation, not paying),
and a WeChat Pay ALL bill for them streamed to a temporary file in the format
WeChat Pay serves. The data are varied so that `per_class` lines or records
fall into each class of difference, and the rest match. Timed: the import
(hashing the file, reading it with `statements`, storing the lines) and the
match of the day, each in its own transaction as the CLI runs them. The run
checks that every class holds exactly what was planted.

The business day is picked at random far in the past, and every reference
carries a tag of the run, so runs never see each other's data.
"""

import csv
import random
import resource
import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from kaquan import accounting, reconciliation
from kaquan.bench.harness import Progress, quiet
from kaquan.kit.db import describe
from kaquan.payments import records
from kaquan.reconciliation.days import BEIJING
from kaquan.runtime import Runtime

T = TypeVar("T")
MCHID = "1900000109"
RATE_BP = 60
CHUNK = 50_000
COLUMNS = (
    "交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识", "交易类型",
    "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额", "微信退款单号", "商户退款单号", "退款金额",
    "充值券退款金额", "退款类型", "退款状态", "商品名称", "商户数据包", "手续费", "费率", "订单金额", "申请退款金额",
    "费率备注",
)  # fmt: skip
SUMMARY = (
    "总交易单数",
    "应结订单总金额",
    "退款总金额",
    "充值券退款总金额",
    "手续费总金额",
    "订单总金额",
    "申请退款总金额",
)


@dataclass(frozen=True)
class Plan:
    """Where each planted difference sits among the payments (by index) and the bill's lines."""

    lines: int
    tag: str
    day: date

    @property
    def per_class(self) -> int:
        return max(1, min(300, self.lines // 100))

    @property
    def matched_refunds(self) -> int:
        return self.lines // 50

    @property
    def plain(self) -> int:
        """Payments whose one line matches."""
        return self.lines - self.matched_refunds - 8 * self.per_class

    @property
    def payments(self) -> int:
        return self.plain + 6 * self.per_class

    def segment(self, i: int) -> str:
        k = self.per_class
        for name, end in (
            ("plain", self.plain),
            ("amount_mismatch", self.plain + k),
            ("fee_mismatch", self.plain + 2 * k),
            ("status_mismatch", self.plain + 3 * k),
            ("duplicate_line", self.plain + 4 * k),
            ("missing_in_statement", self.plain + 5 * k),
        ):
            if i < end:
                return name
        return "timing"

    def expected(self) -> dict[str, int]:
        k = self.per_class
        planted = dict.fromkeys(
            (
                "amount_mismatch",
                "fee_mismatch",
                "status_mismatch",
                "duplicate_line",
                "missing_in_statement",
                "timing",
                "missing_in_kaquan",
                "refund_missing_in_statement",
                "refund_amount_mismatch",
                "refund_missing_in_kaquan",
            ),
            k,
        )
        return {"matched": self.plain + k + self.matched_refunds, **planted}

    def start(self) -> datetime:
        return datetime.combine(self.day, datetime.min.time(), BEIJING)

    def paid_at(self, i: int) -> datetime:
        if self.segment(i) == "timing":
            return self.start() + timedelta(seconds=86_390 + i % 9)
        return self.start() + timedelta(seconds=1 + i * 85_000 // self.payments)  # clear of the timing window

    def amount(self, i: int) -> int:
        return 100 + i % 50_000

    def token(self, i: int) -> str:
        return f"bk{self.tag}{i:09d}"

    def txn(self, i: int) -> str:
        return f"4200{self.tag}{i:012d}"

    def refund_no(self, j: int) -> str:
        return f"rf{self.tag}{j:09d}"

    def refund_id(self, j: int) -> str:
        return f"5030{self.tag}{j:012d}"

    def refund_amount(self, j: int) -> int:
        return self.amount(j) // 2 or 1


def _payments(plan: Plan) -> Iterator[records.BulkPayment]:
    for i in range(plan.payments):
        amount = plan.amount(i)
        status = "closed" if plan.segment(i) == "status_mismatch" else "succeeded"
        fee = accounting.gateway_fee(amount, RATE_BP)
        yield records.BulkPayment(
            plan.token(i), -1 - i, "wechatpay", amount, "CNY", fee, plan.txn(i), plan.paid_at(i).astimezone(UTC), status
        )


def _refunds(plan: Plan) -> Iterator[records.BulkRefund]:
    """Refunds of the first plain payments: matched, then missing in the bill, then with another amount there."""
    for j in range(plan.matched_refunds + 2 * plan.per_class):
        amount = plan.refund_amount(j)
        fee_back = accounting.fee_returned(
            fee_minor=accounting.gateway_fee(plan.amount(j), RATE_BP),
            paid_minor=plan.amount(j),
            refunded_before_minor=0,
            refund_minor=amount,
        )
        at = (plan.paid_at(j) + timedelta(seconds=30)).astimezone(UTC)
        yield records.BulkRefund(plan.refund_no(j), plan.token(j), amount, "CNY", fee_back, plan.refund_id(j), at)


def _chunks(items: Iterator[T]) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


class _BillWriter:
    """WeChat Pay's ALL bill as it downloads: BOM, backticked cells, the summary the reader checks."""

    def __init__(self, path: Path) -> None:
        self._out = path.open("w", encoding="utf-8", newline="")
        self._out.write("\ufeff")
        self._csv = csv.writer(self._out, lineterminator="\r\n")
        self._csv.writerow(COLUMNS)
        self.rows = self.settled = self.refunded = self.fees = 0

    def payment(self, at: datetime, txn: str, token: str, amount: int, fee: int) -> None:
        self._row(at, txn, token, "SUCCESS", amount, "0", "0", 0, fee)
        self.settled += amount

    def refund(self, at: datetime, txn: str, token: str, refund_id: str, refund_no: str, amount: int, fee: int) -> None:
        self._row(at, txn, token, "REFUND", 0, refund_id, refund_no, amount, -fee)
        self.refunded += amount

    def _row(
        self, at: datetime, txn: str, token: str, state: str, settle: int, rid: str, rno: str, refund: int, fee: int
    ) -> None:
        self.rows += 1
        self.fees += fee
        refunded = _yuan(refund)
        self._csv.writerow(
            (
                f"`{at.astimezone(BEIJING):%Y-%m-%d %H:%M:%S}", "`wx2421b1c4370ec43b", f"`{MCHID}", "`0", "`",
                f"`{txn}", f"`{token}", "`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "`NATIVE", f"`{state}", "`OTHERS", "`CNY",
                f"`{_yuan(settle)}", "`0.00", f"`{rid}", f"`{rno}", f"`{refunded}", "`0.00",
                "`ORIGINAL" if refund else "`", "`SUCCESS" if refund else "`", "`会员月卡", "`", f"`{_yuan(fee)}",
                "`0.60%", f"`{_yuan(settle)}", f"`{refunded}", "`",
            )
        )  # fmt: skip

    def close(self) -> None:
        self._csv.writerow(SUMMARY)
        totals = (
            str(self.rows), _yuan(self.settled), _yuan(self.refunded), "0.00", _yuan(self.fees),
            _yuan(self.settled), _yuan(self.refunded),
        )  # fmt: skip
        self._csv.writerow([f"`{value}" for value in totals])
        self._out.close()


def write_bill(plan: Plan, path: Path) -> None:
    """The day's bill, streamed: each payment's line as its segment says, then the refunds, then strangers."""
    bill = _BillWriter(path)
    for i in range(plan.payments):
        segment = plan.segment(i)
        if segment in ("missing_in_statement", "timing"):
            continue
        amount, fee = plan.amount(i), accounting.gateway_fee(plan.amount(i), RATE_BP)
        if segment == "amount_mismatch":
            amount -= 1
        elif segment == "fee_mismatch":
            fee += 1
        for _ in range(2 if segment == "duplicate_line" else 1):
            bill.payment(plan.paid_at(i), plan.txn(i), plan.token(i), amount, fee)
    k = plan.per_class
    for j in range(plan.matched_refunds + 3 * k):
        at = plan.paid_at(j) + timedelta(seconds=30)
        amount = plan.refund_amount(j)
        fee = accounting.fee_returned(
            fee_minor=accounting.gateway_fee(plan.amount(j), RATE_BP),
            paid_minor=plan.amount(j),
            refunded_before_minor=0,
            refund_minor=amount,
        )
        if j < plan.matched_refunds:
            refund_no, refund_id = plan.refund_no(j), plan.refund_id(j)
        elif j < plan.matched_refunds + k:
            continue  # refund_missing_in_statement
        elif j < plan.matched_refunds + 2 * k:
            refund_no, refund_id, amount = plan.refund_no(j), plan.refund_id(j), amount + 1
        else:  # refund_missing_in_kaquan: the gateway gave money back that kaquan never asked for
            refund_no, refund_id = f"rx{plan.tag}{j:09d}", f"5039{plan.tag}{j:012d}"
        bill.refund(at, plan.txn(j), plan.token(j), refund_id, refund_no, amount, fee)
    for s in range(k):  # missing_in_kaquan
        at = plan.start() + timedelta(seconds=3600 + s)
        bill.payment(at, f"4299{plan.tag}{s:012d}", f"zz{plan.tag}{s:09d}", 990, accounting.gateway_fee(990, RATE_BP))
    bill.close()


async def run(rt: Runtime, lines: int, progress: Progress = quiet) -> dict[str, object]:
    plan = Plan(lines, secrets.token_hex(3), date(2001, 1, 1) + timedelta(days=random.randrange(7000)))  # noqa: S311
    if plan.plain < plan.matched_refunds + 3 * plan.per_class:
        raise SystemExit("--lines must be at least 1000")
    progress(f"storing {plan.payments} payments and their refunds (not timed) …")
    for chunk in _chunks(_payments(plan)):
        async with rt.db.transaction() as session:
            await records.add_payments(rt.db, session, chunk)
    async with rt.db.transaction() as session:
        await records.add_refunds(rt.db, session, list(_refunds(plan)))
        await records.after_bulk(session)
    with tempfile.TemporaryDirectory(prefix="kaquan-bench-") as folder:
        path = Path(folder) / f"wechatpay-{plan.day:%Y%m%d}-ALL.csv"
        progress(f"writing the {plan.lines}-line WeChat Pay bill of {plan.day} (not timed) …")
        write_bill(plan, path)
        progress("importing …")
        started = time.perf_counter()
        with path.open("rb") as stream:
            async with rt.db.transaction() as session:
                stored = await reconciliation.import_file(
                    rt.db, session, "wechatpay", stream, filename=path.name, actor="bench"
                )
        imported = time.perf_counter()
    progress("matching …")
    async with rt.db.transaction() as session:
        summary = await reconciliation.match_period(
            rt.db, session, source="wechatpay", first_day=plan.day, last_day=plan.day
        )
    matched = time.perf_counter()
    total = matched - started
    found = {name: n for name, n in summary.counts.items() if n}
    return {
        "bench": "reconcile",
        "db": describe(rt.db.url),
        "lines": stored.lines_read,
        "lines_new": stored.lines_new,
        "payments": plan.payments,
        "refunds": plan.matched_refunds + 2 * plan.per_class,
        "import_s": round(imported - started, 3),
        "match_s": round(matched - imported, 3),
        "total_s": round(total, 3),
        "lines_per_s": round(stored.lines_read / total),
        "classes": found,
        "as_planted": found == plan.expected(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }
