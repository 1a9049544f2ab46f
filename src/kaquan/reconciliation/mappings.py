"""Column mappings finance saves once per generic CSV/XLSX source; a statement of `generic:<name>` reads with it,
and is matched with what its `channel` names (checked when it is saved)."""

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.audit import service as audit
from kaquan.channels import agents, marketplace
from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.kit.errors import BadInput
from kaquan.payments import registry
from kaquan.payments.plugins import load_plugins
from kaquan.reconciliation.days import GATEWAY_SOURCES
from kaquan.reconciliation.errors import MappingNotFound
from kaquan.reconciliation.models import SavedMapping
from kaquan.statements import ColumnMapping, MappingInvalid

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,47}")
MAX_MAPPING_CHARS = 8000


@dataclass(frozen=True)
class MappingView:
    name: str
    mapping: dict[str, Any]  # the ColumnMapping's fields, as saved
    saved_by: str
    saved_at: datetime


def checked_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise BadInput(
            "a mapping's name is 1 to 48 lower-case letters, digits, '-' or '_', starting with a letter or digit",
            name=name[:60],
        )
    return name


def _checked(name: str, text: str) -> str:
    """The mapping as canonical JSON, checked by `ColumnMapping` (MappingInvalid names the key that is wrong).

    A mapping without a `name` takes the one it is saved under; one that names another is refused.
    """
    if len(text) > MAX_MAPPING_CHARS:
        raise BadInput(f"a mapping is at most {MAX_MAPPING_CHARS} characters", length=len(text))
    try:
        data = json.loads(text)
    except ValueError as error:
        raise MappingInvalid(f"not JSON: {error}", key="") from None
    if isinstance(data, dict) and data.setdefault("name", name) != name:
        raise BadInput(f"the mapping says its name is {data['name']!r}, not {name!r}", name=name)
    return ColumnMapping.from_json(json.dumps(data)).to_json()


def gateway_names() -> set[str]:
    """The gateways whose payments a generic source may be matched with: kaquan's readers', installed, configured."""
    return {*GATEWAY_SOURCES, *(plugin.name for plugin in load_plugins()), *(g.name for g in registry.all())}


async def check_channel(session: AsyncSession, channel: str | None) -> None:
    """A mapping's `channel` names a gateway, an existing store or an existing agent (else 422 or 404)."""
    if channel is None:
        return
    kind, colon, name = channel.partition(":")
    if colon and name and kind == "marketplace":
        await marketplace.get_store(session, name)
    elif colon and name and kind == "agent":
        await agents.by_code(session, name)
    elif colon or channel not in gateway_names():
        raise MappingInvalid(
            f"{channel!r} is no gateway ({', '.join(sorted(gateway_names()))}), marketplace:<store> or agent:<code>",
            key="channel",
        )


async def save_mapping(db: Database, session: AsyncSession, name: str, text: str, *, actor: str) -> MappingView:
    """Save (or replace) the mapping `name`; audited with what it was before."""
    stored = _checked(checked_name(name), text)
    await check_channel(session, ColumnMapping.from_json(stored).channel)
    now = clock.now()
    table = SavedMapping.__table__
    created = await session.execute(
        db.insert(table)  # type: ignore[arg-type]
        .values(name=name, mapping=stored, saved_by=actor, saved_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(table.c.name)
    )
    stmt = select(SavedMapping).where(SavedMapping.name == name).execution_options(populate_existing=True)
    row = (await session.execute(db.lock(stmt))).scalar_one()
    before = None
    if created.scalar_one_or_none() is None:
        before = {"mapping": json.loads(row.mapping)}
        row.mapping, row.saved_by, row.saved_at = stored, actor, now
    await audit.record(
        session,
        actor,
        "reconciliation.mapping_saved",
        target=f"reconciliation_mapping:{name}",
        before=before,
        after={"mapping": json.loads(stored)},
    )
    return _view(row)


def _view(row: SavedMapping) -> MappingView:
    return MappingView(row.name, json.loads(row.mapping), row.saved_by, row.saved_at)


async def list_mappings(session: AsyncSession) -> list[MappingView]:
    rows = await session.execute(select(SavedMapping).order_by(SavedMapping.name))
    return [_view(row) for row in rows.scalars()]


async def column_mapping(session: AsyncSession, name: str) -> ColumnMapping:
    """The saved mapping `name`, ready for the generic reader."""
    row = await session.get(SavedMapping, name)
    if row is None:
        raise MappingNotFound(
            f"no saved mapping {name!r}; save one with `kaquan reconcile mapping save`", name=name[:60]
        )
    return ColumnMapping.from_json(row.mapping)


async def get_mapping(session: AsyncSession, name: str) -> MappingView:
    row = await session.get(SavedMapping, name)
    if row is None:
        raise MappingNotFound(f"no saved mapping {name!r}", name=name[:60])
    return _view(row)
