"""The worker loop: outbox events and scheduled jobs (expiring unpaid orders, asking payment providers)."""

import asyncio
import contextlib
import logging
import time

from kaquan.channels import callbacks
from kaquan.inventory import refills
from kaquan.kit import outbox
from kaquan.orders import service as orders
from kaquan.payments import sweeps as payment_sweeps
from kaquan.runtime import Runtime

log = logging.getLogger(__name__)


async def run_once(rt: Runtime) -> int:
    """One pass: expire due orders, then run due outbox events. Returns the work done."""
    expired = await rt.db.run(lambda session: orders.expire_due(rt.db, session))
    flash = await rt.flash.run_due()  # flash-sale events whose start or end has come
    moved = await refills.rebalance_due(rt.db)
    sent = await callbacks.run_due(rt.db, rt.keyring, allow_private=rt.settings.callbacks_allow_private)
    asked = await payment_sweeps.run(rt.db)  # providers asked about payments and refunds they kept quiet about
    return expired + flash + moved + sent + asked + await outbox.run_due(rt.db)


async def run_forever(rt: Runtime, stop: asyncio.Event, *, idle_s: float = 1.0) -> None:
    log.info("worker started")
    while not stop.is_set():
        started = time.monotonic()
        try:
            busy = await run_once(rt)
        except Exception:
            log.exception("worker pass failed; retrying")
            busy = 0
        if busy:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=max(idle_s - (time.monotonic() - started), 0.05))
    log.info("worker stopped")
