"""`kaquan reconcile …`: import a gateway's statement, match a period, work off the differences."""

import csv
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from kaquan import reconciliation
from kaquan.cli import when
from kaquan.cli.common import console, errors, run
from kaquan.cli.confirm import YesFlag, confirmed
from kaquan.cli.output import JsonFlag, emit_json, money, money_json, show, table
from kaquan.runtime import Runtime
from kaquan.statements import StatementRejected

reconcile_app = typer.Typer(
    help="对账 Reconciliation: import statements, match them against kaquan's records, resolve the differences.",
    no_args_is_help=True,
)
ACTOR = "cli"
REJECTED_EXIT = 2


def _day(value: str, name: str) -> date:
    return when.day(value, name)


@reconcile_app.command("import")
def import_statement(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="the statement as downloaded")
    ],
    source: Annotated[str, typer.Option(help=reconciliation.SOURCE_HELP)],
    account: Annotated[
        str | None, typer.Option(help="the merchant id / account the file must be for (default: the gateway's)")
    ] = None,
) -> None:
    """Store a statement's lines once each (导入对账单); the same file again changes nothing.

    A generic CSV/XLSX source reads through the mapping saved for it: `--source generic:NAME`.
    """
    reconciliation.checked_source(source)

    async def work(rt: Runtime) -> reconciliation.ImportResult | StatementRejected:
        with (
            Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as bar,
            file.open("rb") as stream,
        ):
            size = file.stat().st_size
            task = bar.add_task("reading 读取", total=size)
            seen = 0

            def advance(lines: int) -> None:
                nonlocal seen
                seen += lines
                read = size if stream.closed else stream.tell()  # bytes the reader has taken so far
                bar.update(task, completed=read, description=f"reading 读取: {seen} lines")

            try:
                async with rt.db.transaction() as session:
                    done = await reconciliation.import_file(
                        rt.db,
                        session,
                        source,
                        stream,
                        filename=file.name,
                        actor=ACTOR,
                        account=account,
                        on_batch=advance,
                    )
            except StatementRejected as rejected:
                return rejected
            bar.update(task, completed=size)
            return done

    result = run(work)
    if isinstance(result, StatementRejected):
        errors.print(f"[bold red]rejected 拒绝导入[/] ({result.code}): {escape(result.message)}", highlight=False)
        errors.print("nothing was imported 未导入任何记录", highlight=False)
        raise SystemExit(REJECTED_EXIT)
    if result.already_imported:
        console.print(f"already imported 已导入过: statement {result.statement_id}; nothing changed", highlight=False)
    console.print(
        f"statement {result.statement_id} ({result.source}, account {result.account or '-'}): "
        f"{result.lines_read} lines read 读取, {result.lines_new} new 新增, "
        f"{result.lines_known} already stored 已存在, {result.lines_repeated} repeated in the file 重复行",
        highlight=False,
    )


@reconcile_app.command("match")
def match(
    source: Annotated[str, typer.Option(help=reconciliation.SOURCE_HELP)],
    first: Annotated[str, typer.Option("--from", help="first business day, YYYY-MM-DD")],
    last: Annotated[str | None, typer.Option("--to", help="last business day (default: --from)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Match the period's statement lines with kaquan's payments and refunds (自动对账); prints the count per class."""
    first_day = _day(first, "--from")
    last_day = _day(last, "--to") if last else first_day

    async def work(rt: Runtime) -> reconciliation.MatchSummary:
        async with rt.db.transaction() as session:
            return await reconciliation.match_period(
                rt.db, session, source=source, first_day=first_day, last_day=last_day
            )

    summary = run(work)
    if as_json:
        emit_json(
            {
                "source": source,
                "first_day": str(first_day),
                "last_day": str(last_day),
                "counts": summary.counts,
                "differences": summary.differences,
            }
        )
        return
    listed = table("class 类别", "items 笔数", title=f"{source} {first_day} – {last_day}")
    for name, count in summary.counts.items():
        if count:
            listed.add_row(name, str(count))
    show(listed)
    console.print(f"{summary.differences} difference(s) to look at 待处理差异", highlight=False)


@reconcile_app.command("differences")
def differences(
    source: Annotated[str | None, typer.Option(help="wechatpay, alipay or stripe")] = None,
    first: Annotated[str | None, typer.Option("--from", help="first business day, YYYY-MM-DD")] = None,
    last: Annotated[str | None, typer.Option("--to", help="last business day")] = None,
    classes: Annotated[list[str] | None, typer.Option("--class", help="only this class (repeatable)")] = None,
    states: Annotated[
        list[str] | None, typer.Option("--state", help="open, annotated, resolved, auto (default: open, annotated)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 200,
    export: Annotated[
        Path | None, typer.Option("--csv", help="also write them to this CSV (UTF-8 BOM, for Excel)")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """The worklist 差异清单: differences still waiting for finance, oldest first."""
    first_day = _day(first, "--from") if first else None
    last_day = _day(last, "--to") if last else None

    async def work(rt: Runtime) -> list[reconciliation.DifferenceView]:
        async with rt.db.read() as session:
            return await reconciliation.list_differences(
                session,
                source=source,
                first_day=first_day,
                last_day=last_day,
                classes=tuple(classes) if classes else None,
                states=tuple(states) if states else reconciliation.OPEN_STATES,
                limit=limit,
            )

    items = run(work)
    if export is not None:
        _write_csv(export, items)
    if as_json:
        emit_json([_item_json(item) for item in items])
        return
    listed = table(
        "id", "day 日期", "class 类别", "state 状态", "kaquan", "statement 对账单", "fee 手续费", "ref", "note 备注"
    )
    for item in items:
        listed.add_row(
            str(item.id),
            str(item.business_day),
            item.class_,
            item.state,
            money(item.expected_minor, item.currency),
            money(item.found_minor, item.currency),
            f"{money(item.expected_fee_minor, item.currency)} / {money(item.found_fee_minor, item.currency)}",
            item.record_ref or item.line_identity or "-",
            item.note,
        )
    show(listed)
    console.print(f"{len(items)} item(s)", highlight=False)
    if export is not None:
        console.print(f"written to {export}", highlight=False)


def _item_json(item: reconciliation.DifferenceView) -> dict[str, object]:
    return {
        "id": item.id,
        "source": item.source,
        "business_day": str(item.business_day),
        "class": item.class_,
        "state": item.state,
        "expected": money_json(item.expected_minor, item.currency),
        "found": money_json(item.found_minor, item.currency),
        "expected_fee": money_json(item.expected_fee_minor, item.currency),
        "found_fee": money_json(item.found_fee_minor, item.currency),
        "record_ref": item.record_ref,
        "line_identity": item.line_identity,
        "note": item.note,
        "resolution": item.resolution,
        "decided_by": item.decided_by,
    }


def _write_csv(path: Path, items: list[reconciliation.DifferenceView]) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(
            [
                "编号",
                "业务日期",
                "来源",
                "类别",
                "状态",
                "kaquan金额",
                "对账单金额",
                "kaquan手续费",
                "对账单手续费",
                "商户单号",
                "渠道单号",
                "备注",
                "处理方式",
                "处理人",
            ]
        )
        for item in items:
            writer.writerow(
                [
                    item.id,
                    item.business_day,
                    item.source,
                    item.class_,
                    item.state,
                    money(item.expected_minor, item.currency),
                    money(item.found_minor, item.currency),
                    money(item.expected_fee_minor, item.currency),
                    money(item.found_fee_minor, item.currency),
                    item.record_ref or item.line_merchant_ref or "",
                    item.line_counterparty_ref or "",
                    item.note,
                    item.resolution or "",
                    item.decided_by or "",
                ]
            )


@reconcile_app.command("annotate")
def annotate(
    item_id: Annotated[int, typer.Argument(help="the item's id")],
    note: Annotated[str, typer.Option(help="what finance found out 备注")],
) -> None:
    """Attach a note to a difference; re-matching keeps it."""

    async def work(rt: Runtime) -> reconciliation.DifferenceView:
        async with rt.db.transaction() as session:
            return await reconciliation.annotate(rt.db, session, item_id, note=note, actor=ACTOR)

    item = run(work)
    console.print(f"item {item.id} ({item.class_}): {item.state}", highlight=False)


@reconcile_app.command("resolve")
def resolve(
    item_id: Annotated[int, typer.Argument(help="the item's id")],
    resolution: Annotated[str, typer.Option(help="accept_statement, write_off or no_action")],
    note: Annotated[str, typer.Option(help="why 原因")] = "",
    yes: YesFlag = False,
) -> None:
    """Resolve a difference; accept_statement and write_off post the adjustment to the ledger, once."""
    if resolution != "no_action":
        confirmed(f"resolve item {item_id} as {resolution}, posting the difference to the ledger", yes=yes)

    async def work(rt: Runtime) -> reconciliation.DifferenceView:
        async with rt.db.transaction() as session:
            return await reconciliation.resolve(rt.db, session, item_id, resolution=resolution, note=note, actor=ACTOR)

    item = run(work)
    posted = f"; ledger {item.ledger_reference}" if item.ledger_reference else "; nothing posted"
    console.print(f"item {item.id} ({item.class_}): resolved as {item.resolution}{posted}", highlight=False)
