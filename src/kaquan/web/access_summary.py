"""The access log of a flash sale's sold-out answers: one summary line a second instead of one line per answer.

After an event sells out, thousands of late buyers a second each get the same answer
(`200 {"result":"sold_out"}`) from the flash fast path (`web.flash_fast`). A line for each cost as
much CPU as answering it (measured in docs/flash-sale.md), and the lines say nothing the count does
not. So the fast path counts them here, per purchase path, and once a second (and when the server
stops) `kaquan.access` gets one line per path answered:

    12 addresses "POST /api/flash/7/purchase" 200 sold_out x5123 in 1.0 s

with the count, the distinct client addresses and the span as structured fields (`answers`,
`addresses`, `seconds`) in JSON logs. Each answer still carries its `X-Request-ID` header; only its
own line is left out. `KAQUAN_ACCESS_LOG_SOLD_OUT=each` logs every answer on its own line instead.
"""

import asyncio
import time
from dataclasses import dataclass, field

from kaquan.web.security import access_log, redacted_target

EVERY_S = 1.0


@dataclass
class _Tally:
    answers: int = 0
    addresses: set[str] = field(default_factory=set)


class SoldOutSummary:
    """Counts sold-out answers per path and logs them as one line per path every `every_s` seconds."""

    def __init__(self, every_s: float = EVERY_S) -> None:
        self._every_s = every_s
        self._tallies: dict[str, _Tally] = {}
        self._since = time.monotonic()
        self._flush: asyncio.TimerHandle | None = None

    def add(self, path: str, address: str) -> None:
        """One answer to `path` (the purchase path: no query, no secret in it) for the client at `address`."""
        tally = self._tallies.get(path)
        if tally is None:
            tally = self._tallies[path] = _Tally()
        tally.answers += 1
        tally.addresses.add(address)
        if self._flush is None:
            self._since = time.monotonic()
            self._flush = asyncio.get_running_loop().call_later(self._every_s, self.flush)

    def flush(self) -> None:
        """Log what was counted since the last line, now (the timer's call, and at shutdown)."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        tallies, self._tallies = self._tallies, {}
        seconds = round(time.monotonic() - self._since, 1)
        for path, tally in tallies.items():
            addresses = len(tally.addresses)
            client = next(iter(tally.addresses)) if addresses == 1 else f"{addresses} addresses"
            access_log.info(
                '%s "POST %s" 200 sold_out x%d in %.1f s',
                client,
                redacted_target(path, ""),
                tally.answers,
                seconds,
                extra={"answers": tally.answers, "addresses": addresses, "seconds": seconds},
            )
