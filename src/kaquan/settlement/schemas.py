"""Settlement wire types: rules in and out, runs (statements) with their lines."""

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kaquan.kit.bounds import Int32, Int64
from kaquan.settlement.models import SettlementLine, SettlementRule, SettlementRun
from kaquan.settlement.rules import DEFAULT_TIME_ZONE, RuleInput, Tier


class TierIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    threshold_minor: Int64
    rate_bp: Int32


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    currency: str = Field(default="CNY", max_length=3)
    fee_rate_bp: Int32 = 0
    tiers: list[TierIn] = Field(default_factory=list, max_length=20)
    cycle: Literal["daily", "weekly", "monthly"] = "monthly"
    minimum_payout_minor: Int64 = 0
    hold_days: Int32 = 0
    time_zone: str = Field(default=DEFAULT_TIME_ZONE, max_length=64)
    effective_from: date | None = Field(default=None, strict=False)

    def as_input(self) -> RuleInput:
        return RuleInput(
            currency=self.currency,
            fee_rate_bp=self.fee_rate_bp,
            tiers=tuple(Tier(t.threshold_minor, t.rate_bp) for t in self.tiers),
            cycle=self.cycle,
            minimum_payout_minor=self.minimum_payout_minor,
            hold_days=self.hold_days,
            time_zone=self.time_zone,
            effective_from=self.effective_from,
        )


class RuleOut(BaseModel):
    id: int
    counterparty: str
    effective_from: date
    currency: str
    fee_rate_bp: int
    tiers: list[TierIn]
    cycle: str
    minimum_payout_minor: int
    hold_days: int
    time_zone: str

    @classmethod
    def of(cls, counterparty: str, rule: SettlementRule) -> "RuleOut":
        return cls(
            id=rule.id,
            counterparty=counterparty,
            effective_from=rule.effective_from,
            currency=rule.currency,
            fee_rate_bp=rule.fee_rate_bp,
            tiers=[TierIn(threshold_minor=t[0], rate_bp=t[1]) for t in rule.tiers],
            cycle=rule.cycle,
            minimum_payout_minor=rule.minimum_payout_minor,
            hold_days=rule.hold_days,
            time_zone=rule.time_zone,
        )


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    counterparty: str = Field(max_length=80)
    period: str = Field(max_length=40, description="local days, both included: 2026-11-01..2026-11-30")


class LineOut(BaseModel):
    at: datetime
    kind: str
    reference: str
    order_no: str | None
    gross_minor: int
    fee_minor: int
    amount_minor: int
    in_period: bool
    settled: bool

    @classmethod
    def of(cls, line: SettlementLine) -> "LineOut":
        return cls(
            at=line.at,
            kind=line.kind,
            reference=line.reference,
            order_no=line.order_no,
            gross_minor=line.gross_minor,
            fee_minor=line.fee_minor,
            amount_minor=line.amount_minor,
            in_period=line.in_period,
            settled=line.settled,
        )


class RunOut(BaseModel):
    id: int
    counterparty: str
    status: str
    currency: str
    first_day: date
    last_day: date
    period_start: datetime
    period_end: datetime
    figures: dict[str, int]
    created_at: datetime
    confirmed_at: datetime | None
    lines: list[LineOut] | None = None

    @classmethod
    def of(cls, run: SettlementRun, lines: list[SettlementLine] | None = None) -> "RunOut":
        return cls(
            id=run.id,
            counterparty=run.counterparty,
            status=run.status,
            currency=run.currency,
            first_day=run.first_day,
            last_day=run.last_day,
            period_start=run.period_start,
            period_end=run.period_end,
            figures={k: int(v) for k, v in run.figures.items()},
            created_at=run.created_at,
            confirmed_at=run.confirmed_at,
            lines=None if lines is None else [LineOut.of(line) for line in lines],
        )


class ConfirmOut(BaseModel):
    run: RunOut
    posted: bool


class CheckOut(BaseModel):
    runs: int
    ok: bool
    problems: list[str]


class StatementsPage(BaseModel):
    """An agent's confirmed statements, newest first."""

    statements: list[RunOut]
