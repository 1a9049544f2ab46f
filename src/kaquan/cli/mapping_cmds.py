"""`kaquan reconcile mapping …`: the column mappings of generic CSV/XLSX sources, saved once per source."""

import json
from pathlib import Path
from typing import Annotated

import typer

from kaquan import reconciliation
from kaquan.cli.common import console, run
from kaquan.cli.output import JsonFlag, emit_json, local_time, show, table
from kaquan.runtime import Runtime

mapping_app = typer.Typer(
    help="列映射 Column mappings: how a generic CSV/XLSX statement's columns read (import with --source generic:NAME).",
    no_args_is_help=True,
)
ACTOR = "cli"


@mapping_app.command("save")
def save(
    name: Annotated[str, typer.Argument(help="the source's short name: its files import as generic:NAME")],
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="the mapping as JSON, docs/statements.md"),
    ],
) -> None:
    """Save (or replace) a column mapping; it is checked now, not on the first file."""
    text = file.read_text(encoding="utf-8-sig")

    async def work(rt: Runtime) -> reconciliation.MappingView:
        async with rt.db.transaction() as session:
            return await reconciliation.save_mapping(rt.db, session, name, text, actor=ACTOR)

    saved = run(work)
    console.print(f"mapping {saved.name} saved 已保存: import with --source generic:{saved.name}", highlight=False)


@mapping_app.command("list")
def list_(as_json: JsonFlag = False) -> None:
    """The saved mappings and the columns each reads."""

    async def work(rt: Runtime) -> list[reconciliation.MappingView]:
        async with rt.db.read() as session:
            return await reconciliation.list_mappings(session)

    views = run(work)
    if as_json:
        emit_json(
            [
                {"name": v.name, "mapping": v.mapping, "saved_by": v.saved_by, "saved_at": v.saved_at.isoformat()}
                for v in views
            ]
        )
        return
    listed = table("name 名称", "columns 列", "saved by 保存人", "saved at 保存时间")
    for view in views:
        columns = {key: view.mapping.get(key) for key in ("identity", "merchant_ref", "amount", "occurred_at")}
        listed.add_row(
            view.name,
            json.dumps(columns, ensure_ascii=False),
            view.saved_by,
            local_time(view.saved_at),
        )
    show(listed)
