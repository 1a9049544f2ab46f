"""Sold out, known to every process without asking the gate: a frozen copy of a sold-out event's gate.

Once an event's gate has no tokens left, nothing more is admitted until tokens come back (a
failed batch or a refused purchase gives its admission back, a reconcile reloads the gate, an
operator ends the event). Until then the gate's answer to a new request is a pure function of
its counters: a request it has seen before is answered from its state, a buyer, address or
device at its limit gets `limit_reached`, everyone else `sold_out`. `SoldOut` is that frozen
copy, and `SoldOutBoard` keeps one per event in each process, so a sold-out answer costs no
Redis and no database round trip.

The copy is dropped the moment anything could let a purchase in again: every gate announces
such a change (`RedisGate`: a Redis pub/sub message to every process; `MemoryGate`: a call in
process), and a board that is not listening (its subscription lost) answers nothing. A copy is
also never older than `flash_sold_out_s`, a bound for a change announced while the subscription
was being re-established; while the event stays sold out, `FlashSale` copies it again every quarter
of that age, so a burst after a quiet spell never finds the copy expired. A copy built while a change was
announced is thrown away (`generation`). Copying again costs one small read while the gate is unchanged:
the gate stamps every change it makes, and `Gate.sold_out(…, held)` returns the copy held while the stamp
still matches. Reading the whole gate every half second instead cost a process 6 % of its loop at 6,000
buyers (py-spy, 2026-12-07), and grows with the buyers.

The board only ever answers `sold_out`: a `limit_reached` may be a retried purchase whose gate
lost its request states (the slow path finds its order in the database), and a repeated request
is answered with what became of it; both go the slow path.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

LISTEN_WAIT_S = 2.0
LISTEN_POLL_S = 0.01
EVERY_EVENT = 0
"""The event id a change names when every event may have changed (a lost subscription)."""


@dataclass(frozen=True)
class SoldOut:
    """A sold-out event's gate, frozen: the requests it knows and what each buyer, address and device holds."""

    requests: frozenset[str]
    buyers: Mapping[str, int]
    ips: Mapping[str, int]
    devices: Mapping[str, int]
    stamp: int | None = None  # the gate's change stamp when copied (None: the gate keeps none)

    def refuses(
        self,
        *,
        buyer: str,
        quantity: int,
        limit: int,
        request: str,
        ip: str,
        ip_limit: int,
        device: str,
        device_limit: int,
    ) -> bool:
        """Whether the gate would answer this request `sold_out`, as `Gate.admit` decides it (same order of checks)."""
        if request in self.requests:
            return False
        if self.buyers.get(buyer, 0) + quantity > limit:
            return False
        if ip and self.ips.get(ip, 0) + quantity > ip_limit:
            return False
        return not (device and self.devices.get(device, 0) + quantity > device_limit)


@dataclass
class _Entry:
    sold_out: SoldOut
    built_at: float


class SoldOutBoard:
    """The sold-out events this process knows, each dropped when its gate announces a change.

    `read(event_id, held)` fetches a copy from the gate (None: not sold out; `held`, the last copy, when the gate
    has not changed since it was made); `listening()` says whether
    changes reach the board right now. Copies are built in the background, one at a time per event.
    """

    def __init__(
        self,
        read: Callable[[int, SoldOut | None], Awaitable[SoldOut | None]],
        *,
        max_age_s: float,
        listening: Callable[[], bool],
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._max_age_s = max_age_s
        self._listening = listening
        self._now = now
        self._entries: dict[int, _Entry] = {}
        self._last: dict[int, SoldOut] = {}  # the last copy of each event, even once aged out: confirmed cheaply
        self._generations: dict[int, int] = {}
        self._building: dict[int, asyncio.Future[None]] = {}

    def get(self, event_id: int) -> SoldOut | None:
        """The event's frozen gate, when it is sold out, fresh, and changes are being heard."""
        entry = self._entries.get(event_id)
        if entry is None or not self._listening():
            return None
        if self._now() - entry.built_at > self._max_age_s:
            del self._entries[event_id]
            return None
        return entry.sold_out

    async def current(self, event_id: int) -> SoldOut | None:
        """`get`, or, when no copy is held but one is being read, that copy once read (None if not within the bound).

        A copy ages out while the next is read when a busy event loop is slow to turn the read's round trip
        over; the requests of that moment wait for the read here instead of all going to the gate at once
        (which made the loop slower still, and dropped the copy for good under a thousand connections).
        """
        sold_out = self.get(event_id)
        building = self._building.get(event_id)
        if sold_out is not None or building is None:
            return sold_out
        try:
            async with asyncio.timeout(self._max_age_s):
                await asyncio.shield(building)
        except TimeoutError:
            return None
        return self.get(event_id)

    def changed(self, event_id: int) -> None:
        """The gate of `event_id` (or of every event: `EVERY_EVENT`) may admit again: forget what was known."""
        if event_id == EVERY_EVENT:
            self._entries.clear()
            for known in self._generations:
                self._generations[known] += 1
            return
        self._entries.pop(event_id, None)
        self._generations[event_id] = self._generations.get(event_id, 0) + 1

    async def learn(self, event_id: int) -> None:
        """Copy the event's gate if it is sold out (a purchase was just told so); one copy at a time per event
        (a second call waits for the copy being read)."""
        building = self._building.get(event_id)
        if building is not None:
            await asyncio.shield(building)
            return
        self._building[event_id] = asyncio.get_running_loop().create_future()
        try:
            for _ in range(round(LISTEN_WAIT_S / LISTEN_POLL_S)):  # a subscription just started: wait for it
                if self._listening():
                    break
                await asyncio.sleep(LISTEN_POLL_S)
            else:
                return
            generation = self._generations.setdefault(event_id, 0)
            built_at = self._now()
            sold_out = await self._read(event_id, self._last.get(event_id))
            if self._generations.get(event_id) != generation:
                return
            if sold_out is None:
                self._entries.pop(event_id, None)
                self._last.pop(event_id, None)
            else:
                self._entries[event_id] = _Entry(sold_out, built_at)
                self._last[event_id] = sold_out
        finally:
            self._building.pop(event_id).set_result(None)
