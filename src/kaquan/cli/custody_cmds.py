"""`kaquan audit …`, `kaquan keys …` and `kaquan leaks …`: the security operator's commands."""

import base64
import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from kaquan.audit import service as audit
from kaquan.cli.common import aware_time, console, errors, run
from kaquan.cli.confirm import YesFlag, confirmed
from kaquan.cli.output import local_time, show, table
from kaquan.inventory import count_batch_keys, custody, rewrap_batch_keys
from kaquan.kit.crypto import new_key
from kaquan.kit.keys import Rewrapped, StoredKey, count_wrapped, rewrap_named_keys
from kaquan.orders.trace import LeakReport, trace_leaks
from kaquan.runtime import Runtime

audit_app = typer.Typer(help="The hash-chained audit trail: verify it, export it.", no_args_is_help=True)
keys_app = typer.Typer(help="Master key rotation (see docs/key-rotation.md).", no_args_is_help=True)
leaks_app = typer.Typer(help="Trace leaked codes back to their batch, order and reveals.", no_args_is_help=True)
ACTOR = "cli"


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


# --- audit --------------------------------------------------------------------------------------


@audit_app.command("verify")
def verify() -> None:
    """Recompute the whole chain; exit 1 naming the first bad entry if anything was edited, inserted or deleted."""

    async def work(rt: Runtime) -> audit.ChainCheck:
        async with rt.db.read() as session:
            total = await audit.count(session)
            with _progress() as bar:
                task = bar.add_task("verifying", total=total)
                return await audit.verify(session, progress=lambda n: bar.advance(task, n))

    check = run(work)
    if not check.ok:
        errors.print(
            f"[bold red]audit chain broken[/] at entry {check.bad_id}: {check.reason} "
            f"({check.checked} entries before it are intact)",
            highlight=False,
        )
        raise SystemExit(1)
    console.print(f"audit chain intact: {check.checked} entries, head {check.head_hash}", highlight=False)


@audit_app.command("export")
def export(
    file: Annotated[Path, typer.Argument(dir_okay=False, writable=True, help="the CSV file to write")],
    actor: str | None = None,
    action: str | None = None,
    target: Annotated[str | None, typer.Option(help="exact, or a prefix ending in *")] = None,
    since: Annotated[str | None, typer.Option(help="from this time, ISO 8601 with zone")] = None,
    until: Annotated[str | None, typer.Option(help="before this time, ISO 8601 with zone")] = None,
) -> None:
    """Write the (filtered) audit trail to a CSV file, oldest first."""
    where = audit.AuditFilter(
        actor=actor,
        action=action,
        target=target,
        since=aware_time(since, "--since"),
        until=aware_time(until, "--until"),
    )

    async def work(rt: Runtime) -> int:
        written = 0
        async with rt.db.read() as session:
            total = await audit.count(session, where)
            with _progress() as bar, file.open("w", newline="", encoding="utf-8") as handle:
                task = bar.add_task("exporting", total=total)
                out = csv.writer(handle, lineterminator="\r\n")
                out.writerow(audit.CSV_COLUMNS)
                async for entry in audit.entries(session, where):
                    out.writerow(audit.csv_row(entry))
                    written += 1
                    if written % 1000 == 0:
                        bar.advance(task, 1000)
                bar.update(task, completed=written)
        return written

    console.print(f"{run(work)} audit entries written to {file}", highlight=False)


# --- keys ---------------------------------------------------------------------------------------


@keys_app.command("generate")
def generate() -> None:
    """Print a fresh random master key (base64) for KAQUAN_MASTER_KEY. Nothing is stored."""
    typer.echo(base64.b64encode(new_key()).decode())


@keys_app.command("rotate")
def rotate(
    dry_run: Annotated[bool, typer.Option(help="only count what is left to re-wrap; change nothing")] = False,
    yes: YesFlag = False,
) -> None:
    """Re-wrap every batch key and named key under KAQUAN_MASTER_KEY; ciphertexts stay untouched.

    Keys wrapped under a master key listed in KAQUAN_RETIRED_MASTER_KEYS are opened
    with it and re-wrapped; keys already under the new key are skipped, so a run
    that stopped half-way can simply be started again.
    """
    if not dry_run:
        confirmed("re-wrap every key under KAQUAN_MASTER_KEY", yes=yes)

    async def work(rt: Runtime) -> tuple[Rewrapped, Rewrapped]:
        total_batches = await count_batch_keys(rt.db)
        total_named = await count_wrapped(rt.db, StoredKey.__table__, "wrapped")  # type: ignore[arg-type]
        with _progress() as bar:
            task = bar.add_task("named keys", total=total_named)
            named = await rewrap_named_keys(rt.db, rt.keyring, dry_run=dry_run, progress=lambda n: bar.advance(task, n))
            task = bar.add_task("batch keys", total=total_batches)
            batches = await rewrap_batch_keys(
                rt.db, rt.keyring, dry_run=dry_run, progress=lambda n: bar.advance(task, n)
            )
        return named, batches

    named, batches = run(work)
    verb = "to re-wrap" if dry_run else "re-wrapped"
    console.print(
        f"named keys: {named.rewrapped} {verb}, {named.current} already under the primary key\n"
        f"batch keys: {batches.rewrapped} {verb}, {batches.current} already under the primary key",
        highlight=False,
    )
    if not dry_run:
        console.print("every key is under the primary master key now; the retired keys can be removed")


# --- leaks --------------------------------------------------------------------------------------


def _report_json(report: LeakReport, quarantined: list[dict[str, Any]]) -> dict[str, Any]:
    def time(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "found": [
            {
                "line_no": leaked.code.line_no,
                "code": leaked.code.code,
                "batch_id": leaked.code.batch_id,
                "supplier": leaked.code.supplier,
                "sku": leaked.code.sku,
                "status": leaked.code.status,
                "order": leaked.order.number if leaked.order else None,
                "channel": leaked.order.channel if leaked.order else None,
                "sold_at": time(leaked.code.sold_at),
                "reveals": [
                    {"at": time(r.at), "viewer": r.viewer, "reason": r.reason, "ip": r.ip, "units": r.units}
                    for r in leaked.reveals
                ],
            }
            for leaked in report.found
        ],
        "unknown": [{"line_no": n, "code": code} for n, code in report.unknown],
        "problems": [{"line_no": p.line_no, "problem": p.code, "reason": p.reason} for p in report.problems],
        "batches": report.batch_ids,
        "quarantined": quarantined,
    }


def _print_report(report: LeakReport) -> None:
    listed = table("line", "code", "batch", "supplier", "SKU", "status", "order", "channel", "sold", "reveals")
    for leaked in report.found:
        code, order = leaked.code, leaked.order
        reveals = "; ".join(f"{local_time(r.at)} {r.viewer}: {r.reason}" for r in leaked.reveals) or "-"
        listed.add_row(
            str(code.line_no),
            code.code,
            str(code.batch_id),
            code.supplier or "-",
            code.sku,
            code.status,
            order.number if order else "-",
            order.channel if order else "-",
            local_time(code.sold_at),
            reveals,
        )
    show(listed)
    for line_no, shown in report.unknown:
        console.print(f"  line {line_no}: {shown} unknown (not in this inventory)", highlight=False, markup=False)
    for problem in report.problems:
        console.print(f"  line {problem.line_no}: {problem.reason} [{problem.code}]", highlight=False, markup=False)
    console.print(
        f"{len(report.found)} found in {len(report.batch_ids)} batch(es), {len(report.unknown)} unknown, "
        f"{len(report.problems)} unreadable line(s)",
        highlight=False,
    )


@leaks_app.command("trace")
def trace(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="the leaked codes")],
    quarantine: Annotated[
        bool, typer.Option(help="void the unsold codes of every affected batch and quarantine the batches")
    ] = False,
    reason: Annotated[
        str, typer.Option(help="why the batches are quarantined (audited; needed with --quarantine)")
    ] = "",
    layout: Annotated[str, typer.Option(help="auto, single, pair or csv")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    yes: YesFlag = False,
) -> None:
    """Where each leaked code came from and went: batch, supplier, order, channel, every reveal.

    With --quarantine (and a --reason) every affected batch is quarantined: its unsold codes are voided for good.
    """
    why = reason.strip()
    if quarantine:
        if not why:
            raise typer.BadParameter("quarantining voids codes for good: say why with --reason", param_hint="--reason")
        confirmed(f"quarantine every batch {file.name} names, voiding its unsold codes", yes=yes)

    async def work(rt: Runtime) -> tuple[LeakReport, list[dict[str, Any]]]:
        async with rt.db.read() as session:
            report = await trace_leaks(rt.db, session, rt.vault, file.read_bytes(), layout=layout)
        done = []
        if quarantine:
            for batch_id in report.batch_ids:
                async with rt.db.transaction() as session:
                    result = await custody.quarantine(rt.db, session, batch_id, actor=ACTOR, reason=why)
                done.append({"batch_id": batch_id, "voided": result.voided, "reserved": result.held_by_unpaid_orders})
        return report, done

    report, done = run(work)
    if as_json:
        console.print_json(json.dumps(_report_json(report, done)))
        return
    _print_report(report)
    for item in done:
        console.print(
            f"batch {item['batch_id']} quarantined: {item['voided']} unsold code(s) voided, "
            f"{item['reserved']} held by unpaid orders will be voided when released",
            highlight=False,
        )
