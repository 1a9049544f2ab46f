"""Reading posted transfers with their legs by account code: for modules that book by reference and check."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.ledger.accounts import ACCOUNTS
from kaquan.ledger.posting import POSTINGS, TRANSFERS

_CHUNK = 500  # references per IN list: well below every driver's bind-parameter limit


@dataclass(frozen=True)
class PostedLeg:
    account_code: str
    currency: str
    debit_minor: int  # signed like `Leg`: positive = debit, negative = credit


@dataclass(frozen=True)
class PostedTransfer:
    id: int
    kind: str
    reference: str | None
    memo: str
    legs: tuple[PostedLeg, ...]

    def moved(self, account_code: str) -> int:
        """The transfer's net debit to one account (0 when it does not touch it)."""
        return sum(leg.debit_minor for leg in self.legs if leg.account_code == account_code)


async def posted(session: AsyncSession, kind: str, references: Sequence[str]) -> dict[str, PostedTransfer]:
    """The transfers of `kind` posted under any of `references`, by reference (absent: not posted)."""
    found: dict[str, PostedTransfer] = {}
    for start in range(0, len(references), _CHUNK):
        chunk = list(references[start : start + _CHUNK])
        where = (TRANSFERS.c.reference.in_(chunk), TRANSFERS.c.kind == kind)
        for transfer in await _read(session, where):
            found[transfer.reference or ""] = transfer
    return found


async def posted_by_kind(
    session: AsyncSession, references: Mapping[str, Sequence[str]]
) -> dict[tuple[str, str], PostedTransfer]:
    """`posted` for several kinds at once (kind → references), in one query while the lists are short;
    keyed by (kind, reference)."""
    found: dict[tuple[str, str], PostedTransfer] = {}
    if sum(map(len, references.values())) > _CHUNK:
        for kind, refs in references.items():
            found |= {(kind, ref): transfer for ref, transfer in (await posted(session, kind, refs)).items()}
        return found
    wanted = [(TRANSFERS.c.kind == kind) & TRANSFERS.c.reference.in_(list(refs)) for kind, refs in references.items()]
    if not wanted:
        return found
    for transfer in await _read(session, (or_(*wanted),)):
        found[(transfer.kind, transfer.reference or "")] = transfer
    return found


async def posted_of_kinds(session: AsyncSession, kinds: Iterable[str]) -> list[PostedTransfer]:
    """Every transfer of these kinds, oldest first, with its legs."""
    return await _read(session, (TRANSFERS.c.kind.in_(sorted(set(kinds))),))


async def _read(session: AsyncSession, where: tuple[object, ...]) -> list[PostedTransfer]:
    transfer, posting, account = TRANSFERS.c, POSTINGS.c, ACCOUNTS.c
    rows = await session.execute(
        select(
            transfer.id,
            transfer.kind,
            transfer.reference,
            transfer.memo,
            account.code,
            posting.currency,
            posting.amount_minor,
        )
        .join_from(TRANSFERS, POSTINGS, posting.transfer_id == transfer.id)
        .join(ACCOUNTS, account.id == posting.account_id)
        .where(*where)  # type: ignore[arg-type]
        .order_by(transfer.id, posting.id)
    )
    heads: dict[int, tuple[str, str | None, str]] = {}
    legs: dict[int, list[PostedLeg]] = {}
    for row in rows:
        heads.setdefault(row.id, (row.kind, row.reference, row.memo))
        legs.setdefault(row.id, []).append(PostedLeg(row.code, row.currency, row.amount_minor))
    return [PostedTransfer(tid, *heads[tid], legs=tuple(legs[tid])) for tid in heads]
