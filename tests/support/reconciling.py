"""Reconciliation in tests: a shop paid through the WeChat Pay simulator, and statements built in memory.

`MemoryStatement` is a real `kaquan.statements.Statement` whose lines the test
writes itself: the shape every reader produces, without a file format around
it. `WechatShop` pays and refunds orders the way buyers and finance do, through
kaquan's checkout and the provider's simulator, so the payments matched are the
ones the real path leaves behind.
"""

import hashlib
import secrets
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
from tests.support.builders import given_sku_with_codes

from kaquan import accounting, ledger, reconciliation
from kaquan.kit import clock
from kaquan.orders import service as orders
from kaquan.payments import refunds, registry, sweeps
from kaquan.payments import service as payments
from kaquan.payments.plugins import GatewaySetup, Simulation, load_plugins
from kaquan.reconciliation.days import BEIJING
from kaquan.runtime import Runtime
from kaquan.statements import StatementHeader, StatementLine, StatementRejected
from kaquan.web.app import create_app
from kaquan.worker import run_once

PUBLIC_URL = "http://shop.test"
MCHID = "1900000109"


@dataclass
class MemoryStatement:
    """A statement held in memory; `reject_at` makes it fail the way a reader fails on a bad line."""

    header: StatementHeader
    lines: list[StatementLine]
    reject_at: int | None = None

    def batches(self, size: int = 50_000) -> Iterator[list[StatementLine]]:
        for start in range(0, len(self.lines), size):
            batch = self.lines[start : start + size]
            for line in batch:
                if line.line_no == self.reject_at:
                    raise StatementRejected("amount does not parse: '12.3x'", line=line.line_no, column="订单金额")
            yield batch

    @property
    def sha256(self) -> str:
        text = repr((self.header, self.lines))
        return hashlib.sha256(text.encode()).hexdigest()


def statement(
    lines: Sequence[StatementLine], *, day: date, last_day: date | None = None, account: str = MCHID
) -> MemoryStatement:
    numbered = [line._replace(line_no=n + 2) for n, line in enumerate(lines)]
    return MemoryStatement(StatementHeader("wechatpay", account, day, last_day or day, "CNY"), numbered)


@dataclass(frozen=True)
class Paid:
    """A payment as kaquan recorded it."""

    number: str
    token: str
    txn_id: str
    amount_minor: int
    fee_minor: int
    at: datetime

    @property
    def day(self) -> date:
        return self.at.astimezone(BEIJING).date()


def payment_line(paid: Paid, **changes: object) -> StatementLine:
    """The line WeChat Pay's bill prints for `paid` (changed where the test says)."""
    line = StatementLine(
        line_no=0,
        identity=f"pay:{paid.txn_id}",
        kind="payment",
        occurred_at=paid.at,
        amount_minor=paid.amount_minor,
        fee_minor=paid.fee_minor,
        currency="CNY",
        merchant_ref=paid.token,
        counterparty_ref=paid.txn_id,
        status="SUCCESS",
    )
    return line._replace(**changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Refunded:
    refund_no: str
    provider_ref: str
    token: str
    amount_minor: int
    fee_back_minor: int
    at: datetime


def refund_line(done: Refunded, **changes: object) -> StatementLine:
    line = StatementLine(
        line_no=0,
        identity=f"refund:{done.provider_ref or done.refund_no}",
        kind="refund",
        occurred_at=done.at,
        amount_minor=done.amount_minor,
        fee_minor=done.fee_back_minor,
        currency="CNY",
        merchant_ref=done.token,
        counterparty_ref=done.provider_ref,
        refund_ref=done.refund_no,
        status="REFUND",
    )
    return line._replace(**changes)  # type: ignore[arg-type]


def stranger_line(*, at: datetime, amount_minor: int = 990, kind: str = "payment", ref: str = "") -> StatementLine:
    """A line for money kaquan knows nothing about."""
    txn = "42" + secrets.token_hex(10)
    return StatementLine(
        line_no=0,
        identity=f"{kind}:{txn}",
        kind=kind,  # type: ignore[arg-type]
        occurred_at=at,
        amount_minor=amount_minor,
        fee_minor=accounting.gateway_fee(amount_minor, 60),
        currency="CNY",
        merchant_ref=ref,
        counterparty_ref=txn,
        refund_ref=f"R{txn}" if kind == "refund" else "",
        status="REFUND" if kind == "refund" else "SUCCESS",
    )


@dataclass
class WechatShop:
    rt: Runtime
    simulation: Simulation
    sold: list[Paid] = field(default_factory=list)
    rereadable: bool = True  # imports pass `reopen`, as `reconciliation.import_file` does
    reopened: int = 0  # how often the last import read its file a second time

    async def paid(self, price_minor: int = 1990) -> Paid:
        """An order placed, paid by the buyer at the simulator, and delivered."""
        sku = await given_sku_with_codes(self.rt, 3, price_minor=price_minor)
        async with self.rt.db.transaction() as session:
            placed = await orders.place(
                self.rt.db,
                session,
                self.rt.order_keys,
                orders.OrderRequest(
                    sku=sku.id, quantity=1, idempotency_key=secrets.token_hex(6), client_token="c" * 22
                ),
                max_per_order=self.rt.settings.max_per_order,
                hold_minutes=self.rt.settings.hold_minutes,
            )
            started = await payments.start(session, self.simulation.gateway, placed.order)
        await payments.choose(
            self.rt.db,
            started.token,
            f"{self.simulation.gateway.name}:{self.simulation.gateway.methods[0]}",
            public_url=PUBLIC_URL,
            payer=payments.Payer(client_ip="203.0.113.9", payer_id="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"),
        )
        sent = await self.simulation.provider.pay(started.token)
        assert sent is not None and 200 <= sent.status_code < 300, sent
        async with self.rt.db.read() as session:
            row = await payments.by_token(session, started.token)
        assert row.status == "succeeded" and row.gateway_txn_id and row.succeeded_at
        done = Paid(
            placed.order.number, row.token, row.gateway_txn_id, row.amount_minor, row.fee_minor, row.succeeded_at
        )
        self.sold.append(done)
        return done

    async def refund(self, paid: Paid, amount_minor: int | None = None) -> Refunded:
        async with self.rt.db.transaction() as session:
            asked = await refunds.request_for_order(
                self.rt.db,
                session,
                paid.number,
                amount_minor=amount_minor,
                reason="客户申请退款",
                actor="finance",
                may_approve=True,
            )
            refund_no = asked.refund_no
        await run_once(self.rt)
        async with self.rt.db.read() as session:
            row = await refunds.by_refund_no(session, refund_no)
        if row.status == "processing":
            clock.travel(sweeps.REFUND_QUIET_FOR.total_seconds() + 1)
            await sweeps.check_refunds(self.rt.db)
            async with self.rt.db.read() as session:
                row = await refunds.by_refund_no(session, refund_no)
        assert row.status == "succeeded", row.status
        assert row.finished_at is not None
        return Refunded(
            row.refund_no, row.provider_ref or "", paid.token, row.amount_minor, row.fee_back_minor, row.finished_at
        )

    async def books_problems(self) -> list[str]:
        async with self.rt.db.read() as session:
            paid, done = await refunds.books_records(session)
            return (await ledger.check(session)).problems + await accounting.check_books(session, paid, done)

    async def import_(self, memory: MemoryStatement, *, expected: str | None = MCHID) -> reconciliation.ImportResult:
        """Import as `reconciliation.import_file` does (the file can be read again), or without `rereadable`
        as a caller holding a stream it can read only once (every line through the staging table)."""
        self.reopened = 0

        async def reopen() -> MemoryStatement:
            self.reopened += 1
            return memory

        async with self.rt.db.transaction() as session:
            return await reconciliation.import_statement(
                self.rt.db,
                session,
                memory,
                sha256=memory.sha256,
                filename="bill.csv",
                actor="finance",
                expected_account=expected,
                reopen=reopen if self.rereadable else None,
            )

    async def match(self, first: date, last: date | None = None) -> dict[str, int]:
        async with self.rt.db.transaction() as session:
            summary = await reconciliation.match_period(
                self.rt.db, session, source=self.simulation.gateway.name, first_day=first, last_day=last or first
            )
        return {name: n for name, n in summary.counts.items() if n}

    async def items(self, **filters: object) -> list[reconciliation.DifferenceView]:
        """Every item of the worklist, in any state."""
        async with self.rt.db.read() as session:
            return await reconciliation.list_differences(session, states=None, limit=10_000, **filters)  # type: ignore[arg-type]

    async def matched(self, **filters: object) -> list[reconciliation.MatchedView]:
        """The pairs matching found in agreement, kept apart from the worklist."""
        async with self.rt.db.read() as session:
            return await reconciliation.list_matched(session, limit=10_000, **filters)  # type: ignore[arg-type]


@asynccontextmanager
async def wechat_shop(rt: Runtime, tmp_path: Path, gateway: str = "wechatpay") -> AsyncIterator[WechatShop]:
    """A shop whose one gateway is `gateway`'s simulator (WeChat Pay unless a test names another)."""
    plugin = {p.name: p for p in load_plugins()}[gateway]
    setup = GatewaySetup(
        settings=rt.settings,
        public_url=PUBLIC_URL,
        state_dir=tmp_path / "gateways",
        notify_transport=httpx.ASGITransport(app=create_app(rt=rt)),
    )
    simulation = plugin.simulated(setup)
    registry.configure([simulation.gateway], public_url=PUBLIC_URL)
    try:
        yield WechatShop(rt, simulation)
    finally:
        await simulation.provider.drain()
        registry.configure([])


def seconds_until_beijing(hour: int, minute: int = 0, second: int = 0) -> float:
    """How far to move the clock so that it reads hour:minute:second Beijing time (today's or tomorrow's)."""
    now = clock.now().astimezone(BEIJING)
    target = datetime.combine(now.date(), datetime.min.time(), BEIJING) + timedelta(
        hours=hour, minutes=minute, seconds=second
    )
    if target <= now:
        target += timedelta(days=1)
    return (target - now).total_seconds()


def utc(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, datetime.min.time(), BEIJING).replace(hour=hour).astimezone(UTC)


async def items_by_ref(shop: WechatShop) -> dict[str, str]:
    """Each item's class, and each matched pair's, by its record's ref, or its line's identity."""
    found: list[reconciliation.DifferenceView | reconciliation.MatchedView] = [
        *await shop.items(),
        *await shop.matched(),
    ]
    return {(item.record_ref or item.line_identity or "?"): item.class_ for item in found}
