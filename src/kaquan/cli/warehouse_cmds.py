"""`kaquan warehouse …`: Warehouses, refill rules and stock transfers."""

from typing import Annotated

import typer

from kaquan.catalog import service as catalog
from kaquan.cli.common import console, run
from kaquan.cli.output import JsonFlag, emit_json, local_time, show, table
from kaquan.inventory import refills, warehouses
from kaquan.runtime import Runtime

warehouse_app = typer.Typer(help="Warehouses, refill rules and stock transfers.", no_args_is_help=True)
rule_app = typer.Typer(help="Refill rules: keep a warehouse stocked from another.", no_args_is_help=True)
warehouse_app.add_typer(rule_app, name="rule")
ACTOR = "cli"


@warehouse_app.command("add")
def add(
    code: Annotated[str, typer.Argument(help="short code, e.g. backup or agent-42")],
    name: Annotated[str, typer.Option(help="a name people read")],
    kind: Annotated[str, typer.Option(help="own or consignment")] = "own",
    consignee: Annotated[str | None, typer.Option(help="who holds a consignment warehouse's stock")] = None,
) -> None:
    """Add a warehouse."""

    async def work(rt: Runtime) -> warehouses.Warehouse:
        async with rt.db.transaction() as session:
            return await warehouses.create_warehouse(
                rt.db, session, code, name, kind=kind, consignee=consignee, actor=ACTOR
            )

    created = run(work)
    console.print(f"warehouse {created.code} ({created.kind}) added", highlight=False)


@warehouse_app.command("list")
def list_all(as_json: JsonFlag = False) -> None:
    """Every warehouse."""

    async def work(rt: Runtime) -> list[warehouses.Warehouse]:
        async with rt.db.read() as session:
            return await warehouses.list_warehouses(session)

    found = run(work)
    if as_json:
        emit_json(
            [{"id": w.id, "code": w.code, "name": w.name, "kind": w.kind, "consignee": w.consignee} for w in found]
        )
        return
    listed = table("id", "code", "name", "kind", "consignee")
    for w in found:
        listed.add_row(str(w.id), w.code, w.name, w.kind, w.consignee or "")
    show(listed)


@warehouse_app.command("move")
def move(
    sku: Annotated[str, typer.Option(help="SKU code or id")],
    source: Annotated[str, typer.Option("--from", help="warehouse the units leave")],
    target: Annotated[str, typer.Option("--to", help="warehouse the units go to")],
    units: Annotated[int, typer.Option(help="available units to move: all of them or none")],
    reason: Annotated[str, typer.Option(help="why (kept with the transfer and in the audit trail)")],
) -> None:
    """Move available units of a SKU between warehouses."""

    async def work(rt: Runtime) -> warehouses.Transfer:
        async with rt.db.transaction() as session:
            target_sku = await catalog.get_sku(session, sku)
            from_wh = await warehouses.get_warehouse(session, source)
            to_wh = await warehouses.get_warehouse(session, target)
            return await warehouses.transfer_stock(
                rt.db, session, target_sku.id, from_wh.id, to_wh.id, units, actor=ACTOR, reason=reason
            )

    done = run(work)
    console.print(
        f"transfer {done.id}: {done.units} units of SKU {done.sku_id} moved "
        f"from {done.from_warehouse} to {done.to_warehouse}",
        highlight=False,
    )


@warehouse_app.command("transfers")
def transfers(
    sku: Annotated[str | None, typer.Option(help="SKU code or id")] = None,
    warehouse: Annotated[str | None, typer.Option(help="only transfers into or out of this warehouse")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Recent transfers, newest first."""

    async def work(rt: Runtime) -> list[warehouses.Transfer]:
        async with rt.db.read() as session:
            sku_id = (await catalog.get_sku(session, sku)).id if sku else None
            warehouse_id = (await warehouses.get_warehouse(session, warehouse)).id if warehouse else None
            return await warehouses.list_transfers(session, sku_id=sku_id, warehouse_id=warehouse_id, limit=limit)

    found = run(work)
    if as_json:
        emit_json(
            [
                {
                    "id": t.id,
                    "at": t.at.isoformat(),
                    "sku_id": t.sku_id,
                    "from": t.from_warehouse,
                    "to": t.to_warehouse,
                    "units": t.units,
                    "actor": t.actor,
                    "rule_id": t.rule_id,
                    "reason": t.reason,
                }
                for t in found
            ]
        )
        return
    listed = table("id", "at", "SKU", "from", "to", "units", "actor", "rule", "reason")
    for t in found:
        listed.add_row(
            str(t.id),
            local_time(t.at),
            str(t.sku_id),
            t.from_warehouse,
            t.to_warehouse,
            str(t.units),
            t.actor,
            str(t.rule_id or ""),
            t.reason,
        )
    show(listed)


@warehouse_app.command("rebalance")
def rebalance() -> None:
    """Apply the refill rules now (the worker does this every few seconds)."""

    async def work(rt: Runtime) -> list[int]:
        return await refills.rebalance(rt.db)

    moved = run(work)
    console.print(f"{len(moved)} refill transfer(s) made", highlight=False)


@rule_app.command("add")
def add_rule(
    sku: Annotated[str, typer.Option(help="SKU code or id")],
    warehouse: Annotated[str, typer.Option(help="the warehouse kept stocked")],
    source: Annotated[str, typer.Option(help="the warehouse its refills come from")],
    threshold: Annotated[int, typer.Option(help="refill when fewer units than this are available")],
    refill: Annotated[int, typer.Option(help="units moved per refill, at most")],
) -> None:
    """Add a refill rule (the same SKU, warehouse and source again updates and re-enables it)."""

    async def work(rt: Runtime) -> refills.Rule:
        async with rt.db.transaction() as session:
            target_sku = await catalog.get_sku(session, sku)
            target = await warehouses.get_warehouse(session, warehouse)
            from_wh = await warehouses.get_warehouse(session, source)
            return await refills.add_rule(
                rt.db,
                session,
                target_sku.id,
                target.id,
                from_wh.id,
                threshold=threshold,
                refill_units=refill,
                actor=ACTOR,
            )

    rule = run(work)
    console.print(
        f"refill rule {rule.id}: below {rule.threshold} in {rule.warehouse}, "
        f"move up to {rule.refill_units} from {rule.source_warehouse}",
        highlight=False,
    )


@rule_app.command("list")
def list_rules(
    sku: Annotated[str | None, typer.Option(help="SKU code or id")] = None, as_json: JsonFlag = False
) -> None:
    """Refill rules, active and disabled."""

    async def work(rt: Runtime) -> list[refills.Rule]:
        async with rt.db.read() as session:
            sku_id = (await catalog.get_sku(session, sku)).id if sku else None
            return await refills.list_rules(session, sku_id=sku_id)

    found = run(work)
    if as_json:
        emit_json(
            [
                {
                    "id": r.id,
                    "sku_id": r.sku_id,
                    "warehouse": r.warehouse,
                    "source": r.source_warehouse,
                    "threshold": r.threshold,
                    "refill_units": r.refill_units,
                    "active": r.active,
                    "low_since": r.low_since.isoformat() if r.low_since else None,
                }
                for r in found
            ]
        )
        return
    listed = table("id", "SKU", "warehouse", "source", "threshold", "refill", "active", "low since")
    for r in found:
        listed.add_row(
            str(r.id),
            str(r.sku_id),
            r.warehouse,
            r.source_warehouse,
            str(r.threshold),
            str(r.refill_units),
            "yes" if r.active else "no",
            local_time(r.low_since) if r.low_since else "",
        )
    show(listed)


@rule_app.command("disable")
def disable_rule(rule_id: Annotated[int, typer.Argument(help="the rule's id")]) -> None:
    """Stop a refill rule."""

    async def work(rt: Runtime) -> refills.Rule:
        async with rt.db.transaction() as session:
            return await refills.disable_rule(rt.db, session, rule_id, actor=ACTOR)

    console.print(f"refill rule {run(work).id} disabled", highlight=False)
