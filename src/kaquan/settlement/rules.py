"""Settlement rules per counterparty: fee, commission tiers, cycle, minimum payout, hold, currency, time zone.

Setting a rule adds a version in force from a local date; earlier versions stay
as they were (a run names the version it used). Every change is audited.

Commission (返佣): the tiers are `(threshold, rate)` pairs with strictly ascending
thresholds. The run's settled net sales (sales minus refunds) pick the highest
tier whose threshold they reach, and that tier's rate applies to the whole net
amount, rounded half up to the fen: ¥10,000.00 at tiers 10,000→1 %, 50,000→2 %
earns ¥100.00; ¥9,999.99 earns nothing.
"""

from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.accounting import round_half_up
from kaquan.audit import service as audit
from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.kit.money import supported_currencies
from kaquan.settlement.errors import InvalidRule, NoRule
from kaquan.settlement.models import CYCLES, SettlementCounterparty, SettlementRule
from kaquan.settlement.parties import resolve

BASIS_POINTS = 10_000
MAX_AMOUNT_MINOR = 10**15
MAX_TIERS = 20
DEFAULT_TIME_ZONE = "Asia/Shanghai"


@dataclass(frozen=True)
class Tier:
    threshold_minor: int
    rate_bp: int


@dataclass(frozen=True)
class RuleInput:
    currency: str = "CNY"
    fee_rate_bp: int = 0
    tiers: tuple[Tier, ...] = ()
    cycle: str = "monthly"
    minimum_payout_minor: int = 0
    hold_days: int = 0
    time_zone: str = DEFAULT_TIME_ZONE
    effective_from: date | None = None  # None: today, local


def _is_int(value: object) -> bool:
    return type(value) is int


def check_rule(rule: RuleInput) -> None:
    """Refuse a rule that cannot be applied, naming the field."""
    if rule.currency not in supported_currencies():
        raise InvalidRule(f"unsupported currency {rule.currency!r}", field="currency")
    if not _is_int(rule.fee_rate_bp) or not 0 <= rule.fee_rate_bp <= BASIS_POINTS:
        raise InvalidRule("fee_rate_bp is a whole number of basis points from 0 to 10000", field="fee_rate_bp")
    if rule.cycle not in CYCLES:
        raise InvalidRule(f"cycle is one of {', '.join(CYCLES)}, not {rule.cycle!r}", field="cycle")
    if not _is_int(rule.minimum_payout_minor) or not 0 <= rule.minimum_payout_minor <= MAX_AMOUNT_MINOR:
        raise InvalidRule("minimum_payout_minor is a whole number of fen, 0 or more", field="minimum_payout_minor")
    if not _is_int(rule.hold_days) or not 0 <= rule.hold_days <= 366:
        raise InvalidRule("hold_days is a whole number of days from 0 to 366", field="hold_days")
    try:
        ZoneInfo(rule.time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidRule(f"unknown time zone {rule.time_zone!r}", field="time_zone") from exc
    if len(rule.tiers) > MAX_TIERS:
        raise InvalidRule(f"at most {MAX_TIERS} tiers", field="tiers")
    previous = -1
    for index, tier in enumerate(rule.tiers):
        if not _is_int(tier.threshold_minor) or not 0 <= tier.threshold_minor <= MAX_AMOUNT_MINOR:
            raise InvalidRule(f"tier {index + 1}: the threshold is a whole number of fen, 0 or more", field="tiers")
        if not _is_int(tier.rate_bp) or not 0 <= tier.rate_bp <= BASIS_POINTS:
            raise InvalidRule(f"tier {index + 1}: the rate is 0 to 10000 basis points", field="tiers")
        if tier.threshold_minor <= previous:
            raise InvalidRule(f"tier {index + 1}: thresholds must be strictly ascending", field="tiers")
        previous = tier.threshold_minor


def parse_tiers(text: str) -> tuple[Tier, ...]:
    """`"1000000:100,5000000:200"` (threshold in fen : rate in basis points) as tiers; "" is none."""
    tiers = []
    for number, part in enumerate(filter(None, (p.strip() for p in text.split(","))), start=1):
        threshold, colon, rate = part.partition(":")
        if not colon or not threshold.strip().isdigit() or not rate.strip().isdigit():
            raise InvalidRule(f"tier {number}: write THRESHOLD_FEN:RATE_BP, e.g. 1000000:100, not {part!r}")
        tiers.append(Tier(int(threshold), int(rate)))
    return tuple(tiers)


def tier_rate(tiers: list[list[int]] | tuple[Tier, ...], net_minor: int) -> int:
    """The rate of the highest tier whose threshold `net_minor` reaches (0 below the first)."""
    rate = 0
    for tier in tiers:
        threshold, tier_bp = (tier.threshold_minor, tier.rate_bp) if isinstance(tier, Tier) else tier
        if net_minor >= threshold:
            rate = tier_bp
    return rate


def share_of(amount_minor: int, rate_bp: int) -> int:
    """`rate_bp` of a positive amount, rounded half up to the fen; nothing of an amount of 0 or less."""
    return round_half_up(amount_minor * rate_bp, BASIS_POINTS) if amount_minor > 0 else 0


async def counterparty_row(db: Database, session: AsyncSession, code: str) -> SettlementCounterparty:
    await session.execute(
        db.insert(SettlementCounterparty.__table__)  # type: ignore[arg-type]
        .values(code=code, created_at=clock.now())
        .on_conflict_do_nothing(index_elements=["code"])
    )
    stmt = select(SettlementCounterparty).where(SettlementCounterparty.code == code)
    return (await session.execute(stmt)).scalar_one()


def describe(rule: SettlementRule) -> dict[str, object]:
    return {
        "id": rule.id,
        "effective_from": rule.effective_from.isoformat(),
        "currency": rule.currency,
        "fee_rate_bp": rule.fee_rate_bp,
        "tiers": [{"threshold_minor": t[0], "rate_bp": t[1]} for t in rule.tiers],
        "cycle": rule.cycle,
        "minimum_payout_minor": rule.minimum_payout_minor,
        "hold_days": rule.hold_days,
        "time_zone": rule.time_zone,
    }


async def set_rule(
    db: Database, session: AsyncSession, counterparty: str, rule: RuleInput, *, actor: str
) -> SettlementRule:
    """Add a rule version for an agent or store, in force from its date.

    A second version on the same date replaces nothing: it is refused (versions are never updated).
    """
    party = await resolve(session, counterparty)
    check_rule(rule)
    if party.currency is not None and party.currency != rule.currency:
        raise InvalidRule(f"{counterparty} trades in {party.currency}, not {rule.currency}", field="currency")
    party_row = await counterparty_row(db, session, counterparty)
    today = clock.now().astimezone(ZoneInfo(rule.time_zone)).date()
    effective = rule.effective_from or today
    before = await _latest(session, party_row.id, date.max)
    exists = await session.execute(
        select(SettlementRule.id).where(
            SettlementRule.counterparty_id == party_row.id, SettlementRule.effective_from == effective
        )
    )
    if exists.first() is not None:
        raise InvalidRule(
            f"{counterparty} has a rule version in force from {effective} already; give another effective date",
            field="effective_from",
        )
    row = SettlementRule(
        counterparty_id=party_row.id,
        effective_from=effective,
        currency=rule.currency,
        fee_rate_bp=rule.fee_rate_bp,
        tiers=[[t.threshold_minor, t.rate_bp] for t in rule.tiers],
        cycle=rule.cycle,
        minimum_payout_minor=rule.minimum_payout_minor,
        hold_days=rule.hold_days,
        time_zone=rule.time_zone,
        actor=actor,
        created_at=clock.now(),
    )
    session.add(row)
    await session.flush()
    await audit.record(
        session,
        actor,
        "settlement.rule_set",
        target=counterparty,
        before=None if before is None else describe(before),
        after=describe(row),
    )
    return row


async def _latest(session: AsyncSession, counterparty_id: int, day: date) -> SettlementRule | None:
    stmt = (
        select(SettlementRule)
        .where(SettlementRule.counterparty_id == counterparty_id, SettlementRule.effective_from <= day)
        .order_by(SettlementRule.effective_from.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def rule_in_force(session: AsyncSession, counterparty: str, day: date | None = None) -> SettlementRule:
    """The version in force on a local day (the latest when `day` is None)."""
    party = (
        await session.execute(select(SettlementCounterparty).where(SettlementCounterparty.code == counterparty))
    ).scalar_one_or_none()
    found = None if party is None else await _latest(session, party.id, day or date.max)
    if found is None:
        raise NoRule(f"{counterparty} has no settlement rule in force on {day or 'any day'}", counterparty=counterparty)
    return found


async def rules_of(session: AsyncSession, counterparty: str) -> list[SettlementRule]:
    stmt = (
        select(SettlementRule)
        .join(SettlementCounterparty, SettlementCounterparty.id == SettlementRule.counterparty_id)
        .where(SettlementCounterparty.code == counterparty)
        .order_by(SettlementRule.effective_from)
    )
    return list((await session.execute(stmt)).scalars())


async def settled_counterparties(session: AsyncSession) -> list[str]:
    """Every counterparty with a rule, by code."""
    stmt = (
        select(SettlementCounterparty.code)
        .where(SettlementCounterparty.id.in_(select(SettlementRule.counterparty_id)))
        .order_by(SettlementCounterparty.code)
    )
    return list((await session.execute(stmt)).scalars())
