"""The admission gate: who may still buy, decided in memory, never in the database.

Per event the gate keeps the tokens left (units not yet promised), how many units
each buyer has been admitted for, whether the event is open, and the state of each
buyer request it admitted (so a retried request is recognised and a ticket can be
polled from any process). One `admit` checks open → repeated request → per-buyer
limit → tokens and, when all pass, takes the tokens and counts the buyer, atomically.

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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, cast

from redis.asyncio import Redis

Verdict = Literal["admitted", "sold_out", "limit_reached", "closed", "duplicate", "unloaded"]
PENDING = "pending"


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


@dataclass(frozen=True)
class GateView:
    tokens: int
    open: bool
    buyers: int


class Gate(Protocol):
    async def admit(
        self, event_id: int, buyer: str, quantity: int, *, limit: int, request: str, now_ms: int, stale_ms: int
    ) -> Admission:
        """Admit `quantity` units for `buyer` under request id `request`, or say why not.

        A repeated request is a `duplicate` unless it is still pending after `stale_ms`: its admission
        was lost (a crash) and it is admitted afresh. `unloaded`: the gate knows nothing of the event
        (first use, or Redis restarted empty): load it from the database and ask again.
        """
        ...

    async def settle(self, event_id: int, settlements: Sequence[Settlement], *, tokens_cap: int | None) -> None:
        """Record a committed batch; then lower the tokens to `tokens_cap` (the units the event still holds)."""
        ...

    async def load(self, event_id: int, *, tokens: int, buyers: Mapping[str, int], open: bool, ttl_s: int) -> None:
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


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _public(state: str | None) -> str | None:
    return PENDING if state is not None and state.startswith(PENDING + ":") else state


def _stale(state: str, now_ms: int, stale_ms: int) -> bool:
    head, _, at = state.partition(":")
    return head == PENDING and at.isdigit() and now_ms - int(at) >= stale_ms


@dataclass
class _EventState:
    tokens: int
    open: bool
    buyers: dict[str, int] = field(default_factory=dict)
    requests: dict[str, str] = field(default_factory=dict)


class MemoryGate:
    """The gate inside one process. Each method runs without awaiting, so it is atomic on the event loop."""

    def __init__(self) -> None:
        self._events: dict[int, _EventState] = {}

    async def admit(
        self, event_id: int, buyer: str, quantity: int, *, limit: int, request: str, now_ms: int, stale_ms: int
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
        if event.tokens < quantity:
            return Admission("sold_out")
        event.tokens -= quantity
        event.buyers[buyer] = event.buyers.get(buyer, 0) + quantity
        event.requests[request] = f"{PENDING}:{now_ms}"
        return Admission("admitted")

    async def settle(self, event_id: int, settlements: Sequence[Settlement], *, tokens_cap: int | None) -> None:
        event = self._events.get(event_id)
        if event is None:
            return
        for item in settlements:
            if item.give_back:
                event.tokens += item.quantity
                left = event.buyers.get(item.buyer, 0) - item.quantity
                if left > 0:
                    event.buyers[item.buyer] = left
                else:
                    event.buyers.pop(item.buyer, None)
            if item.state is None:
                event.requests.pop(item.request, None)
            else:
                event.requests[item.request] = item.state
        if tokens_cap is not None:
            event.tokens = min(event.tokens, tokens_cap)

    async def load(self, event_id: int, *, tokens: int, buyers: Mapping[str, int], open: bool, ttl_s: int) -> None:
        previous = self._events.get(event_id)
        requests = previous.requests if previous is not None and open else {}
        self._events[event_id] = _EventState(tokens, open, dict(buyers), requests)

    async def close(self, event_id: int, *, ttl_s: int) -> None:
        self._events[event_id] = _EventState(0, False)

    async def view(self, event_id: int) -> GateView | None:
        event = self._events.get(event_id)
        return None if event is None else GateView(event.tokens, event.open, len(event.buyers))

    async def request_state(self, event_id: int, request: str) -> str | None:
        event = self._events.get(event_id)
        return None if event is None else _public(event.requests.get(request))


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
if tonumber(redis.call('HGET', KEYS[1], 'tokens') or '0') < quantity then return {'sold_out', ''} end
redis.call('HINCRBY', KEYS[1], 'tokens', -quantity)
redis.call('HINCRBY', KEYS[2], ARGV[1], quantity)
redis.call('HSET', KEYS[3], ARGV[4], 'pending:' .. ARGV[5])
return {'admitted', ''}
"""

# ARGV: tokens cap (-1: none), then (buyer, quantity, give_back 0/1, request, state or '') per settlement.
# Nothing happens when the event's state is gone (Redis restarted): the next admit reloads it from the database.
_SETTLE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 2, #ARGV, 5 do
  if ARGV[i + 2] == '1' then
    redis.call('HINCRBY', KEYS[1], 'tokens', tonumber(ARGV[i + 1]))
    if redis.call('HINCRBY', KEYS[2], ARGV[i], -tonumber(ARGV[i + 1])) <= 0 then
      redis.call('HDEL', KEYS[2], ARGV[i])
    end
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

# ARGV: tokens, open 0/1, ttl seconds, then (buyer, count) pairs. A closed event forgets its requests.
_LOAD = """
redis.call('DEL', KEYS[1], KEYS[2])
if ARGV[2] ~= '1' then redis.call('DEL', KEYS[3]) end
redis.call('HSET', KEYS[1], 'tokens', ARGV[1], 'open', ARGV[2])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, tonumber(ARGV[3])) end
return 1
"""


class RedisGate:
    """The gate in Redis: one Lua script per call, so admissions from every process are serialized per event."""

    def __init__(self, redis: Redis, *, prefix: str = "kaquan:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._admit = redis.register_script(_ADMIT)
        self._settle = redis.register_script(_SETTLE)
        self._load = redis.register_script(_LOAD)

    def keys(self, event_id: int) -> list[str]:
        """The event's keys: state (tokens, open), buyers, requests; one hash tag, one cluster slot."""
        tag = f"{self._prefix}{{flash:{event_id}}}"
        return [f"{tag}:state", f"{tag}:buyers", f"{tag}:requests"]

    async def admit(
        self, event_id: int, buyer: str, quantity: int, *, limit: int, request: str, now_ms: int, stale_ms: int
    ) -> Admission:
        verdict, seen = await self._admit(
            keys=self.keys(event_id), args=[buyer, quantity, limit, request, now_ms, stale_ms]
        )
        return Admission(cast(Verdict, _text(verdict)), _public(_text(seen)) if seen else None)

    async def settle(self, event_id: int, settlements: Sequence[Settlement], *, tokens_cap: int | None) -> None:
        args: list[str | int] = [-1 if tokens_cap is None else tokens_cap]
        for item in settlements:
            args += [item.buyer, item.quantity, int(item.give_back), item.request, item.state or ""]
        await self._settle(keys=self.keys(event_id), args=args)

    async def load(self, event_id: int, *, tokens: int, buyers: Mapping[str, int], open: bool, ttl_s: int) -> None:
        args: list[str | int] = [tokens, int(open), max(ttl_s, 1)]
        for buyer, count in buyers.items():
            args += [buyer, count]
        await self._load(keys=self.keys(event_id), args=args)

    async def close(self, event_id: int, *, ttl_s: int) -> None:
        await self.load(event_id, tokens=0, buyers={}, open=False, ttl_s=ttl_s)

    async def view(self, event_id: int) -> GateView | None:
        state_key, buyers_key, _ = self.keys(event_id)
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
