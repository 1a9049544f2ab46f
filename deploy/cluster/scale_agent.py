"""Scaling figures for the agent path: the topology of deploy/cluster/up.sh with 1, 2 … `kaquan serve`
processes, agents ordering through the signed open API via HAProxy, driven by wrk with agent.lua.

    PYTHONPATH=src python deploy/cluster/scale_agent.py 1 2 >>deploy/cluster/scaling.jsonl

For each count of serve processes the script brings a topology up, sets up on its database a SKU with
`CODES` codes on the API channel and `BUSY_AGENTS` agents with balance for all of them plus one that runs into
its floor (kaquan.bench.agent_wrk), then, through HAProxy, one after the other:

- batched: `BATCH` orders per signed request (POST /open/v1/orders/batch), `BATCH_CONNECTIONS` connections;
- one order per request (POST /open/v1/orders), `SINGLE_CONNECTIONS` connections;

each for `SECONDS` seconds, every request signed in Lua with a fresh nonce and the current time: orders placed
(as wrk counted them within the run), orders/s, wrk's p50/p99 per request, and the cores each part of the
topology kept busy (scale.py's `cores_used`; wrk is under "wrk"). The database ends with a few more orders than
wrk counted: the requests still in flight when wrk stopped are completed, not answered to it. Then it checks
the database (no code held by two orders, every agent above its floor), runs `kaquan ledger check` on it, takes
the topology down and prints one JSON line per count with the machine's load average before and after.
"""

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from scale import cores_used  # deploy/cluster/scale.py, beside this file

from kaquan.bench import agent_wrk
from kaquan.bench.cluster import Topology
from kaquan.bench.harness import HOST
from kaquan.runtime import start

CODES = 40_000
BUSY_AGENTS = 4
BATCH = 50
BATCH_CONNECTIONS = 8
SINGLE_CONNECTIONS = 32
SECONDS = 20


async def _measure(topology: Topology, var_dir: Path) -> dict[str, Any]:
    rt = await start(topology.settings(var_dir))
    try:
        stage = await agent_wrk.set_up(rt, codes=CODES, busy_agents=BUSY_AGENTS)
        url = f"http://{HOST}:{topology.front}"
        result: dict[str, Any] = {"load_average_before": os.getloadavg()}
        for run, batch, connections in (("batch", BATCH, BATCH_CONNECTIONS), ("single", 1, SINGLE_CONNECTIONS)):
            cores: dict[str, float] = {}
            with cores_used(topology, cores):
                result[run] = await agent_wrk.storm(
                    stage,
                    url,
                    batch=batch,
                    connections=connections,
                    seconds=SECONDS,
                    run=run,
                    out=var_dir / f"agent-{run}.json",
                )
            result[run]["cores"] = cores
            result[run]["load_average_after"] = os.getloadavg()
        result["checks"] = await agent_wrk.check(rt, stage)
        return result
    finally:
        await rt.close()


def ledger_check(topology: Topology, var_dir: Path) -> dict[str, Any]:
    """`kaquan ledger check` on the topology's database: its exit status and what it said."""
    env = {**os.environ, **topology.environment(), "KAQUAN_VAR_DIR": str(var_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "kaquan", "ledger", "check"], env=env, capture_output=True, text=True, check=False
    )
    return {"exit": done.returncode, "said": (done.stdout + done.stderr).strip().splitlines()}


def measure(serves: int) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="kq-scale-"))  # short: PostgreSQL's socket path has a length limit
    directory.rmdir()
    topology = Topology.up(Path(__file__).parent, directory, serves=serves)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            var_dir = Path(scratch)
            result: dict[str, Any] = {"path": "agent", "serves": serves, "codes": CODES, "agents": BUSY_AGENTS + 1}
            result["orders_per_request"] = {"batch": BATCH, "single": 1}
            result["connections"] = {"batch": BATCH_CONNECTIONS, "single": SINGLE_CONNECTIONS}
            result["seconds"] = SECONDS
            result.update(asyncio.run(_measure(topology, var_dir)))
            result["checks"]["kaquan_ledger_check"] = ledger_check(topology, var_dir)
            return result
    finally:
        topology.down()


def main() -> None:
    for serves in [int(arg) for arg in sys.argv[1:]] or [1, 2]:
        print(json.dumps(measure(serves)), flush=True)


if __name__ == "__main__":
    main()
