"""Scaling figures: the topology of deploy/cluster/up.sh with 1, 2, 3 … `kaquan serve` processes, measured with wrk
through HAProxy.

    PYTHONPATH=src python deploy/cluster/scale.py 1 2 3 >>deploy/cluster/scaling.jsonl

For each count of serve processes the script brings a topology up (its own directory and free ports), loads the
demo catalog (`kaquan demo`), and measures through HAProxy, one after the other:

- the read pages: the home page and a product page, `wrk` (one thread) over `PAGE_CONNECTIONS` connections for
  `PAGE_S` seconds each: answers/s and wrk's p99; meanwhile the CPU time each part of the topology used (serve
  processes, worker, HAProxy, PostgreSQL, Redis, wrk, and everything else on the machine), as cores busy;
- the flash sale's sold-out answer: an event of one unit, sold, then `wrk` sends new buyers' purchases over
  `PAGE_CONNECTIONS` connections for `PAGE_S` seconds: answers/s, p99, and the cores each part used;
- a flash sale: `kaquan bench flash --url` (the storm of new buyers until the units are gone, then late buyers
  answered sold out for `--hammer-seconds`: the sold-out answers/s and their p99);
- the buying path: `kaquan bench shop --url` (order, the dev gateway's signed payment notification, the lookup
  that shows the code: orders/s and a buyer's p99 from first request to code on screen);

then takes the topology down, and prints one JSON line per count. The machine's load average is in each line:
on a shared machine the figures are only as quiet as it was.
"""

import asyncio
import json
import os
import re
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select

from kaquan.bench import flash as flash_bench
from kaquan.bench import wrk
from kaquan.bench.cluster import Topology
from kaquan.bench.harness import HOST, UNTHROTTLED, HttpConnection
from kaquan.catalog.models import Product
from kaquan.flashsale import service as flash_events
from kaquan.runtime import start

PAGE_CONNECTIONS = 32
PAGE_S = 10
FLASH = ["--stock", "1000", "--buyers", "5000", "--connections", "64", "--storm-seconds", "10"]
FLASH += ["--hammer-seconds", "10", "--pgbench-clients", "2"]
SHOP = ["--codes", "1000", "--buyers", "64", "--seconds", "90", "--raw-connections", "8"]
TICK = os.sysconf("SC_CLK_TCK")


def settings(secret: str) -> dict[str, str]:
    """The topology's extra settings: the dev gateway pays (under the shop bench's secret), and every flash
    buyer comes from 127.0.0.1, so the per-address flash throttle is lifted (shop buyers each send an address
    of their own in X-Forwarded-For, which HAProxy passes on and kaquan trusts from it)."""
    return {
        "KAQUAN_DEV_GATEWAY": "1",
        "KAQUAN_DEV_GATEWAY_SECRET": secret,
        "KAQUAN_FLASH_PER_IP_PER_MINUTE": UNTHROTTLED,
    }


# CPU time by part of the topology ------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, user + system ticks) of a process; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return int(fields[1]), int(fields[11]) + int(fields[12])


def _processes() -> dict[int, tuple[int, int]]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            found[int(entry.name)] = stat
    return found


def _roots(topology: Topology) -> dict[str, list[int]]:
    """The pids each part of the topology started from (its descendants belong to it too)."""
    run = topology.directory / "run"

    def pids(pattern: str) -> list[int]:
        return [int(file.read_text().split()[0]) for file in sorted(run.glob(pattern))]

    clusters = ("pg-primary", "pg-replica")
    postmasters = [int((topology.directory / name / "postmaster.pid").read_text().split()[0]) for name in clusters]
    return {
        "serve": pids("serve-*.pid"),
        "worker": pids("worker.pid"),
        "haproxy": pids("haproxy.pid"),
        "postgres": postmasters,
        "redis": pids("redis-*.pid"),
    }


def _machine_ticks() -> int:
    """CPU ticks every core spent busy since boot (all but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4]


def _by_part(roots: dict[str, list[int]]) -> dict[str, int]:
    processes = _processes()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    ticks = {}
    for part, starts in roots.items():
        todo, total = list(starts), 0
        while todo:
            pid = todo.pop()
            total += processes.get(pid, (0, 0))[1]
            todo.extend(children.get(pid, []))
        ticks[part] = total
    ticks["machine"] = _machine_ticks()
    return ticks


def _load_generator_s() -> float:
    """CPU seconds this script and its children that have ended (wrk, once waited for) used so far."""
    own, ended = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + ended.ru_utime + ended.ru_stime


@contextmanager
def cores_used(topology: Topology, into: dict[str, float]) -> Iterator[None]:
    """Fill `into` with the cores each part kept busy on average while the block ran: the topology's parts, `wrk`
    (this script and the wrk it ran and waited for within the block), and `other`, the rest of the machine."""
    roots = _roots(topology)
    before, generator, started = _by_part(roots), _load_generator_s(), time.monotonic()
    yield
    after, seconds = _by_part(roots), time.monotonic() - started
    used = {part: (after[part] - before[part]) / TICK / seconds for part in after}
    used["wrk"] = (_load_generator_s() - generator) / seconds
    used["other"] = used["machine"] - sum(value for part, value in used.items() if part != "machine")
    into.update({part: round(value, 2) for part, value in used.items()})


# The measurements ------------------------------------------------------------------------------------------------


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def page(topology: Topology, path: str) -> dict[str, Any]:
    """wrk on GET `path` through HAProxy: answers/s, p50/p99, errors, and the cores each part used."""
    command = ["wrk", "-t1", f"-c{PAGE_CONNECTIONS}", f"-d{PAGE_S}s", "--latency"]
    command += [f"http://{HOST}:{topology.front}{path}"]
    cores: dict[str, float] = {}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: S603 - our own command
    with cores_used(topology, cores):
        out, _ = process.communicate()
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "path": path,
        "per_s": round(float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))),  # type: ignore[union-attr]
        "p50_ms": round(_ms(re.search(r"\s50%\s+(\S+)", out).group(1)), 1),  # type: ignore[union-attr]
        "p99_ms": round(_ms(re.search(r"\s99%\s+(\S+)", out).group(1)), 1),  # type: ignore[union-attr]
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
        "cores": cores,
    }


def kaquan(topology: Topology, var_dir: Path, *args: str) -> dict[str, Any]:
    """A `kaquan` command on the topology's database and Redis Cluster; its last line, when it is JSON."""
    env = {**os.environ, **topology.environment(), "KAQUAN_VAR_DIR": str(var_dir)}
    done = subprocess.run(  # noqa: S603 - our own command
        [sys.executable, "-m", "kaquan", *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"kaquan {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    last = done.stdout.strip().splitlines()[-1]
    return json.loads(last) if last.startswith("{") else {}


async def _sold_out_event(topology: Topology, var_dir: Path) -> int:
    """A live flash event of one unit, bought through HAProxy: every purchase after is answered sold out."""
    rt = await start(topology.settings(var_dir))
    try:
        stage = await flash_bench.set_up(rt, stock_units=1, baseline_units=0)
        connection = HttpConnection(HOST, topology.front)
        body = json.dumps({"buyer": f"{stage.tag}-first", "quantity": 1, "request_id": "1"}).encode()
        device = {"X-Device-Token": secrets.token_urlsafe(32)}
        answer = await connection.request("POST", f"/api/flash/{stage.event_id}/purchase", body, device)
        await connection.close()
        if answer.status not in (200, 202):
            raise RuntimeError(f"the event's one unit was not sold: {answer.status} {answer.body[:200]!r}")
        async with rt.db.read() as session:
            event = await flash_events.get_event(session, stage.event_id)
        while True:  # a queued purchase commits with its batch
            async with rt.db.read() as session:
                if (await flash_events.counters(session, event)).sold == 1:
                    return stage.event_id
            await asyncio.sleep(0.1)
    finally:
        await rt.close()


def sold_out(topology: Topology, event_id: int) -> dict[str, Any]:
    """New buyers' purchases of a sold-out event through HAProxy (wrk, `PAGE_CONNECTIONS` connections)."""
    cores: dict[str, float] = {}
    with cores_used(topology, cores):
        load = asyncio.run(
            wrk.purchases(
                topology.front,
                f"/api/flash/{event_id}/purchase",
                prefix=f"x{secrets.token_hex(3)}",
                connections=PAGE_CONNECTIONS,
                seconds=PAGE_S,
                host=HOST,
            )
        )
    return {
        "per_s": round(load.sold_out / load.seconds),
        "p50_ms": round(load.p50_ms, 1),
        "p99_ms": round(load.p99_ms, 1),
        "not_sold_out": load.answers - load.sold_out,
        "timeouts": load.timeouts,
        "cores": cores,
    }


async def _a_product(topology: Topology, var_dir: Path) -> int:
    rt = await start(topology.settings(var_dir))
    try:
        async with rt.db.read() as session:
            found = (await session.execute(select(Product.id).order_by(Product.id).limit(1))).scalar_one()
            return int(found)
    finally:
        await rt.close()


def measure(serves: int) -> dict[str, Any]:
    secret = secrets.token_urlsafe(24)
    directory = Path(tempfile.mkdtemp(prefix="kq-scale-"))  # short: PostgreSQL's socket path has a length limit
    directory.rmdir()
    topology = Topology.up(Path(__file__).parent, directory, serves=serves, extra_settings=settings(secret))
    try:
        with tempfile.TemporaryDirectory() as scratch:
            var_dir = Path(scratch)
            kaquan(topology, var_dir, "demo")
            product = asyncio.run(_a_product(topology, var_dir))
            result: dict[str, Any] = {"serves": serves, "load_average_before": os.getloadavg()}
            result["home"] = page(topology, "/")
            result["product"] = page(topology, f"/products/{product}")
            result["sold_out"] = sold_out(topology, asyncio.run(_sold_out_event(topology, var_dir)))
            url = ["--url", f"http://{HOST}:{topology.front}"]
            flash = kaquan(topology, var_dir, "bench", "flash", *FLASH, *url)
            result["flash"] = {
                key: flash[key]
                for key in (
                    "sold",
                    "oversold",
                    "duplicate_codes",
                    "stock_adds_up",
                    "orders_per_s",
                    "storm_first_answer_p99_ms",
                    "sold_out_answers_per_s",
                    "sold_out_p99_ms",
                    "timeouts",
                    "errors_5xx",
                    "load_average",
                )
            }
            shop = kaquan(topology, var_dir, "bench", "shop", *SHOP, *url)
            result["shop"] = {
                key: shop[key]
                for key in (
                    "delivered",
                    "oversold",
                    "duplicate_codes",
                    "all_delivered",
                    "orders_per_s",
                    "p50_ms",
                    "p99_ms",
                    "errors_5xx",
                    "timeouts",
                    "load_avg_after",
                )
            }
            result["load_average_after"] = os.getloadavg()
            return result
    finally:
        topology.down()


def main() -> None:
    for serves in [int(arg) for arg in sys.argv[1:]] or [1, 2]:
        print(json.dumps(measure(serves)), flush=True)


if __name__ == "__main__":
    main()
