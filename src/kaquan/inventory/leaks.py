"""Leak tracing, the inventory's half: where each leaked code came from, found by fingerprint.

The leaked file is fingerprinted with the same keyed HMAC the import uses and
looked up on the unique fingerprint index; nothing in the inventory is
decrypted. Orders are opaque ids here: `orders.trace` adds order facts.
"""

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.catalog import service as catalog
from kaquan.inventory.delivery import mask
from kaquan.inventory.intake.parsing import LineProblem, ParsedFile
from kaquan.inventory.models import Batch, Code, Reveal
from kaquan.inventory.vault import Vault
from kaquan.kit.db import Database


@dataclass(frozen=True)
class RevealFact:
    at: datetime
    viewer: str
    reason: str
    ip: str | None
    units: int


@dataclass(frozen=True)
class TracedCode:
    line_no: int
    code: str  # masked: the trace never echoes a secret
    code_id: int
    batch_id: int
    supplier: str
    sku: str
    status: str
    order_id: int | None
    sold_at: datetime | None
    batch_quarantined: bool


@dataclass(frozen=True)
class InventoryTrace:
    found: list[TracedCode]
    unknown: list[tuple[int, str]]  # (line number, masked code)
    problems: list[LineProblem]
    reveals: dict[int, list[RevealFact]] = field(default_factory=dict)

    @property
    def batch_ids(self) -> list[int]:
        return sorted({code.batch_id for code in self.found})


async def trace(db: Database, session: AsyncSession, vault: Vault, parsed: ParsedFile) -> InventoryTrace:
    prints = [vault.fingerprints.of(line.card_no, line.secret) for line in parsed.lines]
    rows = {}
    size = db.chunk_size()
    for start in range(0, len(prints), size):
        result = await session.execute(
            select(
                Code.fingerprint,
                Code.id,
                Code.batch_id,
                Code.status,
                Code.order_id,
                Code.sold_at,
                Batch.supplier,
                Batch.quarantined_at,
                Code.sku_id,
            )
            .join(Batch, Batch.id == Code.batch_id)
            .where(Code.fingerprint.in_(prints[start : start + size]))
        )
        rows.update({row.fingerprint: row for row in result})
    sku_codes = await catalog.sku_codes(session, (row.sku_id for row in rows.values()))
    found, unknown = [], []
    for line, fingerprint in zip(parsed.lines, prints, strict=True):
        shown = mask(line.secret)
        row = rows.get(fingerprint)
        if row is None:
            unknown.append((line.line_no, shown))
            continue
        found.append(
            TracedCode(
                line.line_no,
                shown,
                row.id,
                row.batch_id,
                row.supplier,
                sku_codes[row.sku_id],
                row.status,
                row.order_id,
                row.sold_at,
                row.quarantined_at is not None,
            )
        )
    order_ids = sorted({code.order_id for code in found if code.order_id is not None})
    return InventoryTrace(found, unknown, list(parsed.problems), await reveals_of(session, order_ids))


async def reveals_of(session: AsyncSession, order_ids: list[int]) -> dict[int, list[RevealFact]]:
    reveals: dict[int, list[RevealFact]] = {}
    if not order_ids:
        return reveals
    rows = await session.execute(select(Reveal).where(Reveal.order_id.in_(order_ids)).order_by(Reveal.id))
    for reveal in rows.scalars():
        reveals.setdefault(reveal.order_id, []).append(
            RevealFact(reveal.at, reveal.viewer, reveal.reason, reveal.ip, reveal.units)
        )
    return reveals
