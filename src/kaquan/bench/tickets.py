"""The storm's ticket holders, polling as a buyer's client does: each ticket after its Retry-After, until answered.

A winner whose batch has not committed within the server's short wait is answered 202 with a ticket
(`web.flash_api`). Its client comes back after the answer's Retry-After with `GET
/api/flash/tickets/{ticket}` from the same device, and again while the answer stays 202. The storm's
`wrk` script writes every ticket it is given, with the device token and the Retry-After, to a file
(`bench.wrk`); `TicketHolders` reads that file as it grows and polls each ticket when it is due, over
a few kept-alive connections of its own. Few requests, late in the storm: Python here competes little
with the server for the two cores, unlike the storm's own load, which `wrk` sends.

What it counts: the polls, their latencies, the answers by result, the order numbers told (for the
check that no order number is told twice), and the tickets still unanswered when it stops.
"""

import asyncio
import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from kaquan.bench.harness import HttpConnection, ProtocolError

CONNECTIONS = 8
READ_EVERY_S = 0.005
DEFAULT_RETRY_AFTER_S = 1.0  # when a 202 came without a Retry-After


@dataclass
class Polls:
    """What the ticket holders saw."""

    tickets: int = 0
    polls: int = 0
    answers: Counter[str] = field(default_factory=Counter)  # by result ("won", "queued", …) or "http_<status>"
    errors: int = 0  # connection errors and answers that were not HTTP
    unanswered: int = 0  # tickets still queued (or never polled) when the holders stopped
    latencies_ms: list[float] = field(default_factory=list)
    order_numbers: list[str] = field(default_factory=list)

    def with_status(self, hundreds: int) -> int:
        """Polls answered with an HTTP status of that class (4: 4xx, 5: 5xx)."""
        return sum(n for result, n in self.answers.items() if result.startswith(f"http_{hundreds}"))

    def percentile_ms(self, share: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class TicketHolders:
    """Reads the tickets `wrk` writes under `tickets_path` (one file per thread: `<path>.<n>`) and polls them."""

    def __init__(self, host: str, port: int, tickets_path: Path, *, connections: int = CONNECTIONS) -> None:
        self.polls = Polls()
        self.tickets_path = tickets_path
        self._read_at: dict[Path, int] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._pool: asyncio.Queue[HttpConnection] = asyncio.Queue()
        for _ in range(connections):
            self._pool.put_nowait(HttpConnection(host, port))
        self._reading: asyncio.Task[None] | None = None
        self._done_reading = asyncio.Event()

    def start(self) -> None:
        self._reading = asyncio.create_task(self._read_tickets())

    async def finish(self, within_s: float) -> Polls:
        """Read the last tickets written, wait for every ticket's answer (at most `within_s`), close; the counts."""
        self._done_reading.set()
        if self._reading is not None:
            await self._reading
        deadline = time.perf_counter() + within_s
        while self._pending and time.perf_counter() < deadline:
            await asyncio.wait(self._pending, timeout=deadline - time.perf_counter())
        self.polls.unanswered = len(self._pending)
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        while not self._pool.empty():
            await self._pool.get_nowait().close()
        return self.polls

    async def _read_tickets(self) -> None:
        while True:
            last_round = self._done_reading.is_set()
            for path in sorted(self.tickets_path.parent.glob(self.tickets_path.name + ".*")):
                for line in self._new_lines(path):
                    self._hold(line)
            if last_round:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done_reading.wait(), READ_EVERY_S)

    def _new_lines(self, path: Path) -> list[str]:
        """The whole lines written to `path` since it was last read (a line still being written waits)."""
        with path.open("rb") as file:
            file.seek(self._read_at.get(path, 0))
            chunk = file.read()
        whole = chunk[: chunk.rfind(b"\n") + 1]
        self._read_at[path] = self._read_at.get(path, 0) + len(whole)
        return whole.decode().splitlines()

    def _hold(self, line: str) -> None:
        ticket, device, retry_after = line.split()
        self.polls.tickets += 1
        task = asyncio.create_task(self._poll(ticket, device, _seconds(retry_after)))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _poll(self, ticket: str, device: str, retry_after_s: float) -> None:
        """Poll the ticket after each Retry-After until it is answered with anything but 202 (or fails)."""
        while True:
            await asyncio.sleep(retry_after_s)
            connection = await self._pool.get()
            started = time.perf_counter()
            try:
                answer = await connection.request(
                    "GET", f"/api/flash/tickets/{ticket}", headers={"X-Device-Token": device}
                )
            except (OSError, asyncio.IncompleteReadError, ProtocolError):
                await connection.close()
                self.polls.errors += 1
                return
            finally:
                self._pool.put_nowait(connection)
            self.polls.polls += 1
            self.polls.latencies_ms.append(1000 * (time.perf_counter() - started))
            result = _result(answer.status, answer.body)
            self.polls.answers[result] += 1
            if result != "queued":
                if result == "won":
                    self.polls.order_numbers.append(str(json.loads(answer.body)["order_no"]))
                return
            retry_after_s = answer.retry_after if answer.retry_after is not None else DEFAULT_RETRY_AFTER_S


def _result(status: int, body: bytes) -> str:
    if status not in (200, 202):
        return f"http_{status}"
    try:
        return str(json.loads(body)["result"])
    except (ValueError, KeyError, TypeError):
        return f"http_{status}"


def _seconds(retry_after: str) -> float:
    return float(retry_after) if retry_after.isdigit() else DEFAULT_RETRY_AFTER_S
