"""The admission gate: who may still buy, decided in memory, never in the database.

Per event the gate keeps the tokens left (units not yet promised), how many units
each buyer, each client address and each device has been admitted for, whether the
event is open, and the state of each buyer request it admitted (so a retried request
is recognised and a ticket can be polled from any process). One `admit` checks open →
repeated request → per-buyer, per-address and per-device limits → tokens and, when
all pass, takes the tokens and counts the buyer, address and device, atomically.

The gate is a fast filter, not the truth. The database re-checks stock and the
per-buyer limit when it commits, so a gate that knows too much stock costs a few
wasted commits, never an oversold code. The gate is therefore only ever allowed to
err high: it is (re)loaded from database truth (`reconcile`), and after each batch
its tokens are capped at what the event still holds in the database.

Two implementations with one interface: `RedisGate` (a Lua script per call, atomic
across processes; all keys of an event share the hash tag `{flash:<id>}`, so they
live in one Redis Cluster slot) and `MemoryGate` (one process only: the embedded
mode without Redis).
"""

import asyncio
import itertools
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, cast

from redis.exceptions import RedisError

from kaquan.flashsale.sold_out import EVERY_EVENT, SoldOut
from kaquan.kit.keyvalue import RedisClient
from kaquan.kit.redis_scripts import PipelinedScript

log = logging.getLogger(__name__)
Verdict = Literal["admitted", "sold_out", "limit_reached", "closed", "duplicate", "unloaded"]
PENDING = "pending"
_NONE: Mapping[str, int] = {}
RESUBSCRIBE_S = 0.5
_STAMP_BITS = 52  # exact in a Lua number, and HINCRBY counts on from it


@dataclass(frozen=True)
class Admission:
    """The gate's answer. For a `duplicate`, `state` is what became of the first request."""

    verdict: Verdict
    state: str | None = None


@dataclass(frozen=True)
class Settlement:
    """What the database made of one admitted request.

    `give_back`: the admission's tokens and buyer count return to the gate (the request did not take
    them). `state`: what a repeat of the request or a ticket poll learns; None forgets the request,
    so submitting it again is admitted afresh (a failed commit, a full queue).
    """

    buyer: str
    quantity: int
    request: str
    give_back: bool
    state: str | None
    ip: str = ""  # the address and device tags the admission counted ("" when it counted none)
    device: str = ""


@dataclass(frozen=True)
class GateView:
    tokens: int
    open: bool
    buyers: int


class Gate(Protocol):
    async def admit(
        self,
        event_id: int,
        buyer: str,
        quantity: int,
        *,
        limit: int,
        request: str,
        now_ms: int,
        stale_ms: int,
        ip: str = "",
        ip_limit: int = 0,
        device: str = "",
        device_limit: int = 0,
    ) -> Admission:
        """Admit `quantity` units for `buyer` under request id `request`, or say why not.

        `ip` and `device` (tags; "" for none) are held to `ip_limit` and `device_limit` units like the
        buyer to `limit`; past any of them the answer is `limit_reached`.
        A repeated request is a `duplicate` unless it is still pending after `stale_ms`: its admission
        was lost (a crash) and it is admitted afresh. `unloaded`: the gate knows nothing of the event
        (first use, or Redis restarted empty): load it from the database and ask again.
        """
        ...

    async def settle(self, event_id: int, settlements: Sequence[Settlement], *, tokens_cap: int | None) -> None:
        """Record a committed batch; then lower the tokens to `tokens_cap` (the units the event still holds)."""
        ...

    async def load(
        self,
        event_id: int,
        *,
        tokens: int,
        buyers: Mapping[str, int],
        open: bool,
        ttl_s: int,
        ips: Mapping[str, int] = _NONE,
        devices: Mapping[str, int] = _NONE,
    ) -> None:
        """Replace the event's counters by database truth (request states are kept)."""
        ...

    async def close(self, event_id: int, *, ttl_s: int) -> None:
        """Refuse every further admission to the event."""
        ...

    async def view(self, event_id: int) -> GateView | None:
        """The event's counters, or None when the gate holds nothing for it."""
        ...

    async def request_state(self, event_id: int, request: str) -> str | None:
        """`pending`, a final state (`won`, `sold_out`, …), or None when the request is unknown."""
        ...

    async def sold_out(self, event_id: int, held: SoldOut | None = None) -> SoldOut | None:
        """The event's gate frozen, when it is open with no tokens left (else None).

        `held`: a copy made earlier; returned as it is when the gate has not changed since (its stamp).
        """
        ...

    def on_change(self, listener: Callable[[int], None]) -> None:
        """Call `listener(event_id)` whenever an event's gate may admit again (tokens back, reloaded, closed)."""
        ...

    def listening(self) -> bool:
        """Whether every change, from every process, reaches the listeners right now."""
        ...

    async def watch(self) -> None:
        """Deliver changes made by other processes to the listeners until cancelled."""
        ...


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _public(state: str | None) -> str | None:
    return PENDING if state is not None and state.startswith(PENDING + ":") else state


def _stale(state: str, now_ms: int, stale_ms: int) -> bool:
    head, _, at = state.partition(":")
    return head == PENDING and at.isdigit() and now_ms - int(at) >= stale_ms


def _take_back(counts: dict[str, int], holder: str, quantity: int) -> None:
    left = counts.get(holder, 0) - quantity
    if left > 0:
        counts[holder] = left
    else:
        counts.pop(holder, None)


@dataclass
class _EventState:
    tokens: int
    open: bool
    buyers: dict[str, int] = field(default_factory=dict)
    requests: dict[str, str] = field(default_factory=dict)
    ips: dict[str, int] = field(default_factory=dict)
    devices: dict[str, int] = field(default_factory=dict)
    stamp: int = 0  # changed with every change of the counters or the requests known


class MemoryGate:
    """The gate inside one process. Each method runs without awaiting, so it is atomic on the event loop."""

    def __init__(self) -> None:
        self._events: dict[int, _EventState] = {}
        self._listeners: list[Callable[[int], None]] = []
        self._stamps = itertools.count(1)

    def _changed(self, event_id: int) -> None:
        for listener in self._listeners:
            listener(event_id)

    async def admit(
        self,
        event_id: int,
        buyer: str,
        quantity: int,
        *,
        limit: int,
        request: str,
        now_ms: int,
        stale_ms: int,
        ip: str = "",
        ip_limit: int = 0,
        device: str = "",
        device_limit: int = 0,
    ) -> Admission:
        event = self._events.get(event_id)
        if event is None:
            return Admission("unloaded")
        if not event.open:
            return Admission("closed")
        seen = event.requests.get(request)
        if seen is not None and not _stale(seen, now_ms, stale_ms):
            return Admission("duplicate", _public(seen))
        if event.buyers.get(buyer, 0) + quantity > limit:
            return Admission("limit_reached")
        if ip and event.ips.get(ip, 0) + quantity > ip_limit:
            return Admission("limit_reached")
        if device and event.devices.get(device, 0) + quantity > device_limit:
            return Admission("limit_reached")
        if event.tokens < quantity:
            return Admission("sold_out")
        event.tokens -= quantity
        event.buyers[buyer] = event.buyers.get(buyer, 0) + quantity
        if ip:
            event.ips[ip] = event.ips.get(ip, 0) + quantity
        if device:
            event.devices[device] = event.devices.get(device, 0) + quantity
        event.requests[request] = f"{PENDING}:{now_ms}"
        event.stamp = next(self._stamps)
        return Admission("admitted")

    async def settle(self, event_id: int, settlements: Sequence[Settlement], *, tokens_cap: int | None) -> None:
        event = self._events.get(event_id)
        if event is None:
            return
        event.stamp = next(self._stamps)
        if any(item.give_back for item in settlements):
            self._changed(event_id)
        for item in settlements:
            if item.give_back:
                event.tokens += item.quantity
                _take_back(event.buyers, item.buyer, item.quantity)
                if item.ip:
                    _take_back(event.ips, item.ip, item.quantity)
                if item.device:
                    _take_back(event.devices, item.device, item.quantity)
            if item.state is None:
                event.requests.pop(item.request, None)
            else:
                event.requests[item.request] = item.state
        if tokens_cap is not None:
            event.tokens = min(event.tokens, tokens_cap)

    async def load(
        self,
        event_id: int,
        *,
        tokens: int,
        buyers: Mapping[str, int],
        open: bool,
        ttl_s: int,
        ips: Mapping[str, int] = _NONE,
        devices: Mapping[str, int] = _NONE,
    ) -> None:
        previous = self._events.get(event_id)
        requests = previous.requests if previous is not None and open else {}
        self._events[event_id] = _EventState(
            tokens, open, dict(buyers), requests, dict(ips), dict(devices), stamp=next(self._stamps)
        )
        if tokens > 0 or not open:
            self._changed(event_id)

    async def close(self, event_id: int, *, ttl_s: int) -> None:
        self._events[event_id] = _EventState(0, False, stamp=next(self._stamps))
        self._changed(event_id)

    async def view(self, event_id: int) -> GateView | None:
        event = self._events.get(event_id)
        return None if event is None else GateView(event.tokens, event.open, len(event.buyers))

    async def request_state(self, event_id: int, request: str) -> str | None:
        event = self._events.get(event_id)
        return None if event is None else _public(event.requests.get(request))

    async def sold_out(self, event_id: int, held: SoldOut | None = None) -> SoldOut | None:
        event = self._events.get(event_id)
        if event is None or not event.open or event.tokens > 0:
            return None
        if held is not None and held.stamp == event.stamp:
            return held
        return SoldOut(frozenset(event.requests), dict(event.buyers), dict(event.ips), dict(event.devices), event.stamp)

    def on_change(self, listener: Callable[[int], None]) -> None:
        self._listeners.append(listener)

    def listening(self) -> bool:
        return True  # one process: every change is made here

    async def watch(self) -> None:
        return


# KEYS: state, buyers, requests, ips, devices.
# ARGV: buyer, quantity, limit, request, now ms, stale ms, ip ('' none), ip limit, device ('' none), device limit.
_ADMIT = """
local open = redis.call('HGET', KEYS[1], 'open')
if not open then return {'unloaded', ''} end
if open ~= '1' then return {'closed', ''} end
local seen = redis.call('HGET', KEYS[3], ARGV[4])
if seen then
  local at = string.match(seen, '^pending:(%d+)$')
  if not at or tonumber(ARGV[5]) - tonumber(at) < tonumber(ARGV[6]) then
    return {'duplicate', seen}
  end
end
local quantity = tonumber(ARGV[2])
if tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') + quantity > tonumber(ARGV[3]) then
  return {'limit_reached', ''}
end
if ARGV[7] ~= '' and tonumber(redis.call('HGET', KEYS[4], ARGV[7]) or '0') + quantity > tonumber(ARGV[8]) then
  return {'limit_reached', ''}
end
if ARGV[9] ~= '' and tonumber(redis.call('HGET', KEYS[5], ARGV[9]) or '0') + quantity > tonumber(ARGV[10]) then
  return {'limit_reached', ''}
end
if tonumber(redis.call('HGET', KEYS[1], 'tokens') or '0') < quantity then return {'sold_out', ''} end
redis.call('HINCRBY', KEYS[1], 'tokens', -quantity)
redis.call('HINCRBY', KEYS[2], ARGV[1], quantity)
if ARGV[7] ~= '' then redis.call('HINCRBY', KEYS[4], ARGV[7], quantity) end
if ARGV[9] ~= '' then redis.call('HINCRBY', KEYS[5], ARGV[9], quantity) end
redis.call('HSET', KEYS[3], ARGV[4], 'pending:' .. ARGV[5])
redis.call('HINCRBY', KEYS[1], 'stamp', 1)
-- Counters born here (an event loaded with none) expire with the event's state, never live forever.
local ttl = redis.call('TTL', KEYS[1])
if ttl > 0 then for i = 2, 5 do redis.call('EXPIRE', KEYS[i], ttl) end end
return {'admitted', ''}
"""

# ARGV: tokens cap (-1: none), then (buyer, quantity, give_back 0/1, request, state or '', ip, device) per settlement.
# Nothing happens when the event's state is gone (Redis restarted): the next admit reloads it from the database.
_SETTLE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'stamp', 1)
local function take_back(key, holder, quantity)
  if holder ~= '' and redis.call('HINCRBY', key, holder, -quantity) <= 0 then redis.call('HDEL', key, holder) end
end
for i = 2, #ARGV, 7 do
  if ARGV[i + 2] == '1' then
    local quantity = tonumber(ARGV[i + 1])
    redis.call('HINCRBY', KEYS[1], 'tokens', quantity)
    take_back(KEYS[2], ARGV[i], quantity)
    take_back(KEYS[4], ARGV[i + 5], quantity)
    take_back(KEYS[5], ARGV[i + 6], quantity)
  end
  if ARGV[i + 4] == '' then
    redis.call('HDEL', KEYS[3], ARGV[i + 3])
  else
    redis.call('HSET', KEYS[3], ARGV[i + 3], ARGV[i + 4])
  end
end
local cap = tonumber(ARGV[1])
if cap >= 0 and tonumber(redis.call('HGET', KEYS[1], 'tokens') or '0') > cap then
  redis.call('HSET', KEYS[1], 'tokens', cap)
end
return 1
"""

# ARGV: tokens, open 0/1, ttl seconds, then how many (holder, count) pairs of buyers, ips and devices follow,
# a new stamp, then the pairs themselves in that order. A closed event forgets its requests.
# The stamp is drawn at random, not counted on: a Redis that restarted empty must not count up to a stamp
# a process still holds a copy under.
_LOAD = """
redis.call('DEL', KEYS[1], KEYS[2], KEYS[4], KEYS[5])
if ARGV[2] ~= '1' then redis.call('DEL', KEYS[3]) end
redis.call('HSET', KEYS[1], 'tokens', ARGV[1], 'open', ARGV[2], 'stamp', ARGV[7])
local at = 8
for section, key in ipairs({KEYS[2], KEYS[4], KEYS[5]}) do
  for _ = 1, tonumber(ARGV[3 + section]) do
    redis.call('HSET', key, ARGV[at], ARGV[at + 1])
    at = at + 2
  end
end
for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, tonumber(ARGV[3])) end
return 1
"""


class RedisGate:
    """The gate in Redis: one Lua script per call, so admissions from every process are serialized per event."""

    def __init__(self, redis: RedisClient, *, prefix: str = "kaquan:", side: RedisClient | None = None) -> None:
        """`side`: a client of its own for the changes channel and the sold-out copies, so that neither
        waits for a connection behind a storm's admissions (default: `redis`)."""
        self._redis = redis
        self._side = side or redis
        self._prefix = prefix
        self._channel = f"{prefix}flash:changed"
        self._listeners: list[Callable[[int], None]] = []
        self._subscribed = False
        self._admit = PipelinedScript(redis, _ADMIT)  # a storm's admissions: many at once
        self._settle = redis.register_script(_SETTLE)
        self._load = redis.register_script(_LOAD)

    def keys(self, event_id: int) -> list[str]:
        """The event's keys: state (tokens, open), buyers, requests, ips, devices; one hash tag, one cluster slot."""
        tag = f"{self._prefix}{{flash:{event_id}}}"
        return [f"{tag}:state", f"{tag}:buyers", f"{tag}:requests", f"{tag}:ips", f"{tag}:devices"]

    async def admit(
        self,
        event_id: int,
        buyer: str,
        quantity: int,
        *,
        limit: int,
        request: str,
        now_ms: int,
        stale_ms: int,
        ip: str = "",
        ip_limit: int = 0,
        device: str = "",
        device_limit: int = 0,
    ) -> Admission:
        args: list[str | int] = [buyer, quantity, limit, request, now_ms, stale_ms, ip, ip_limit, device, device_limit]
        verdict, seen = await self._admit(self.keys(event_id), args)
        return Admission(cast(Verdict, _text(verdict)), _public(_text(seen)) if seen else None)

    async def settle(self, event_id: int, settlements: Sequence[Settlement], *, tokens_cap: int | None) -> None:
        args: list[str | int] = [-1 if tokens_cap is None else tokens_cap]
        for item in settlements:
            args += [item.buyer, item.quantity, int(item.give_back), item.request, item.state or ""]
            args += [item.ip, item.device]
        await self._settle(keys=self.keys(event_id), args=args)
        if any(item.give_back for item in settlements):
            await self._announce(event_id)

    async def load(
        self,
        event_id: int,
        *,
        tokens: int,
        buyers: Mapping[str, int],
        open: bool,
        ttl_s: int,
        ips: Mapping[str, int] = _NONE,
        devices: Mapping[str, int] = _NONE,
    ) -> None:
        args: list[str | int] = [tokens, int(open), max(ttl_s, 1), len(buyers), len(ips), len(devices)]
        args.append(secrets.randbits(_STAMP_BITS))
        for counts in (buyers, ips, devices):
            for holder, count in counts.items():
                args += [holder, count]
        await self._load(keys=self.keys(event_id), args=args)
        if tokens > 0 or not open:
            await self._announce(event_id)

    async def close(self, event_id: int, *, ttl_s: int) -> None:
        await self.load(event_id, tokens=0, buyers={}, open=False, ttl_s=ttl_s)

    async def view(self, event_id: int) -> GateView | None:
        state_key, buyers_key, *_ = self.keys(event_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(state_key)
            pipe.hlen(buyers_key)
            raw, buyers = await pipe.execute()
        state = {_text(k): _text(v) for k, v in raw.items()}
        if "open" not in state:
            return None
        return GateView(int(state.get("tokens", 0)), state["open"] == "1", int(buyers))

    async def request_state(self, event_id: int, request: str) -> str | None:
        seen = await self._redis.hget(self.keys(event_id)[2], request)
        return _public(_text(seen)) if seen else None

    async def sold_out(self, event_id: int, held: SoldOut | None = None) -> SoldOut | None:
        state_key, buyers_key, requests_key, ips_key, devices_key = self.keys(event_id)
        if held is not None and held.stamp is not None:
            opened, tokens, now_stamped = (
                _text(v) if v is not None else None
                for v in await self._side.hmget(state_key, ["open", "tokens", "stamp"])
            )
            if opened != "1" or int(tokens or 0) > 0:
                return None
            if now_stamped is not None and int(now_stamped) == held.stamp:
                return held
        async with self._side.pipeline(transaction=True) as pipe:
            pipe.hgetall(state_key)
            pipe.hkeys(requests_key)
            pipe.hgetall(buyers_key)
            pipe.hgetall(ips_key)
            pipe.hgetall(devices_key)
            raw, requests, buyers, ips, devices = await pipe.execute()
        state = {_text(k): _text(v) for k, v in raw.items()}
        if state.get("open") != "1" or int(state.get("tokens", 0)) > 0:
            return None
        stamp = int(state["stamp"]) if "stamp" in state else None  # none: loaded before gates kept stamps
        return SoldOut(frozenset(_text(r) for r in requests), _counts(buyers), _counts(ips), _counts(devices), stamp)

    def on_change(self, listener: Callable[[int], None]) -> None:
        self._listeners.append(listener)

    def listening(self) -> bool:
        return self._subscribed

    async def _announce(self, event_id: int) -> None:
        self._changed(event_id)  # this process at once; the others through the channel
        await self._redis.publish(self._channel, str(event_id))

    def _changed(self, event_id: int) -> None:
        for listener in self._listeners:
            listener(event_id)

    async def watch(self) -> None:
        """Subscribe to the changes channel; while the subscription is lost, nothing is known sold out."""
        while True:
            pubsub = self._side.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                self._subscribed = True
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None and message["type"] == "message":
                        data = _text(message["data"])
                        if data.isdigit():
                            self._changed(int(data))
            except (RedisError, OSError) as exc:
                log.warning("flash-sale change channel lost: %s", type(exc).__name__)
            finally:
                self._subscribed = False
                self._changed(EVERY_EVENT)
                await pubsub.aclose()
            await asyncio.sleep(RESUBSCRIBE_S)


def _counts(raw: Mapping[bytes | str, bytes | str]) -> dict[str, int]:
    return {_text(holder): int(count) for holder, count in raw.items()}
