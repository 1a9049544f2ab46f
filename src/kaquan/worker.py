"""The worker loop: outbox events and scheduled jobs (expiring unpaid orders, asking payment providers,
fetching their daily bills, settlement drafts at each cycle's end, a new risk model into shadow weekly)."""

import asyncio
import contextlib
import logging
import time

from kaquan import operations
from kaquan.channels import callbacks
from kaquan.inventory import refills
from kaquan.kit import outbox
from kaquan.orders import service as orders
from kaquan.payments import sweeps as payment_sweeps
from kaquan.payments.fraud import fraud_evidence
from kaquan.reconciliation import fetch_due_bills
from kaquan.risk import Evidence
from kaquan.runtime import Runtime
from kaquan.settlement import tasks as settlement_tasks

log = logging.getLogger(__name__)
HEARTBEAT_EVERY_S = 5.0


async def _fraud_evidence(rt: Runtime) -> list[Evidence]:
    async with rt.db.read() as session:
        return await fraud_evidence(session)


async def run_once(rt: Runtime) -> int:
    """One pass: expire due orders, then run due outbox events. Returns the work done."""
    expired = await rt.db.run(lambda session: orders.expire_due(rt.db, session))
    flash = await rt.flash.run_due()  # flash-sale events whose start or end has come
    moved = await refills.rebalance_due(rt.db)
    sent = await callbacks.run_due(rt.db, rt.keyring, allow_private=rt.settings.callbacks_allow_private)
    asked = await payment_sweeps.run(rt.db)  # providers asked about payments and refunds they kept quiet about
    # each gateway's bill of every published day of the look-back not fetched yet, imported and matched
    bills = await fetch_due_bills(rt.db, look_back_days=rt.settings.bill_look_back_days)
    drafts = await settlement_tasks.run_due(rt.db)  # statements of periods that have just ended
    # a new risk model into shadow every KAQUAN_RISK_RETRAIN_EVERY_S (weekly), from outcomes learned since
    trained = await rt.retrainer.run_due(rt.db, lambda: _fraud_evidence(rt))
    return expired + flash + moved + sent + asked + bills + drafts + trained + await outbox.run_due(rt.db)


async def run_forever(rt: Runtime, stop: asyncio.Event, *, idle_s: float = 1.0) -> None:
    log.info("worker started")
    last_beat = float("-inf")
    while not stop.is_set():
        started = time.monotonic()
        try:
            busy = await run_once(rt)
            if started - last_beat >= HEARTBEAT_EVERY_S:  # a pass that completed, not one that only began
                await operations.beat(rt.db)
                last_beat = started
        except Exception:
            log.exception("worker pass failed; retrying")
            busy = 0
        if busy:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=max(idle_s - (time.monotonic() - started), 0.05))
    log.info("worker stopped")
