"""Agents ordering through the signed open API, driven by `wrk` with `agent.lua`, against a server this module
does not start (a deployment behind a load balancer: deploy/cluster/scale_agent.py).

`set_up` creates, on the deployment's database, a SKU with its stock on the API channel's price list and the
agents with their keys: `Stage.busy` agents with balance for every order they could place, and one that can
afford `FLOOR_ORDERS` orders (its credit limit included), so it runs into its floor while the others buy.
`storm` runs wrk for a while (every request signed in Lua with a fresh nonce and the current time, the agents
taking turns), and `check` then reads the database: no code held by two orders, the ledger balanced, no agent's
balance ever below its limit.
"""

import asyncio
import json
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from kaquan import ledger
from kaquan.bench.goods import stocked_sku
from kaquan.catalog import service as catalog
from kaquan.catalog.schemas import ProductCreate
from kaquan.channels import agents
from kaquan.channels import pricing as channels
from kaquan.orders import checks as order_checks
from kaquan.runtime import Runtime

PRICE_MINOR = 100
FLOOR_ORDERS = 50  # what the floor agent can afford: 40 orders' deposit and 10 orders' credit
WRK_TIMEOUT_S = 10  # a batch of 50 on a loaded machine can take seconds; past this wrk counts a time-out


@dataclass(frozen=True)
class Stage:
    tag: str
    sku_id: int
    sku_code: str
    keys: list[agents.IssuedKey]  # the busy agents' keys, then the floor agent's
    account_ids: list[int]

    @property
    def busy(self) -> int:
        return len(self.keys) - 1


async def set_up(rt: Runtime, *, codes: int, busy_agents: int) -> Stage:
    """A SKU with `codes` codes at `PRICE_MINOR` on the API channel, `busy_agents` agents that can each afford
    all of them, and one agent that can afford `FLOOR_ORDERS`."""
    tag = f"AGENT-WRK-{int(time.time())}-{secrets.token_hex(2)}".upper()
    async with rt.db.transaction() as session:
        product = await catalog.create_product(session, ProductCreate(name=tag, kind="voucher"), actor="bench")
        sku = await stocked_sku(
            rt, session, product_id=product.id, code=tag, price_minor=PRICE_MINOR, codes=codes, actor="bench"
        )
        await channels.set_price(rt.db, session, "api", tag, PRICE_MINOR, actor="bench")
        keys, account_ids = [], []
        for n in range(busy_agents + 1):
            floor_agent = n == busy_agents
            agent = await agents.create_agent(
                rt.db,
                session,
                code=f"{tag.lower()}-{n}",
                name=f"bench agent {n}",
                currency="CNY",
                credit_limit_minor=(FLOOR_ORDERS // 5) * PRICE_MINOR if floor_agent else 0,
                actor="bench",
            )
            deposit = (FLOOR_ORDERS - FLOOR_ORDERS // 5) if floor_agent else codes
            await agents.top_up(rt.db, session, agent.id, deposit * PRICE_MINOR, reference="bench", actor="bench")
            keys.append(await agents.issue_key(rt.db, session, rt.keyring, agent.id, ip_allowlist=[], actor="bench"))
            account_ids.append(agent.account_id)
    return Stage(tag, sku.id, tag, keys, account_ids)


def script() -> Path:
    """agent.lua, beside kq_hmac.lua, which it loads from its own directory."""
    return Path(str(resources.files("kaquan.bench").joinpath("agent.lua")))


async def storm(
    stage: Stage, url: str, *, batch: int, connections: int, seconds: int, run: str, out: Path
) -> dict[str, Any]:
    """wrk's agents against `url` for `seconds`: `batch` orders per signed request (1: POST /open/v1/orders).
    `run` names the phase: it starts every order number and nonce, so phases never collide. What agent.lua
    counted, with orders/s and requests/s."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed: apt-get install wrk")
    command = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", f"--timeout={WRK_TIMEOUT_S}s", "-s", str(script())]
    command += [url, "--", stage.sku_code, str(batch), f"{stage.tag}-{run}", str(out)]
    command += [f"{key.key_id}:{key.secret}" for key in stage.keys]
    process = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    said, _ = await process.communicate()
    written = _read_result(out)
    if process.returncode != 0 or written is None:
        raise RuntimeError(f"wrk failed ({process.returncode}): {said.decode(errors='replace')[-2000:]}")
    result: dict[str, Any] = json.loads(written)
    elapsed = result["duration_us"] / 1e6
    result["orders_per_s"] = round(result["placed"] / elapsed)
    result["requests_per_s"] = round(result["requests"] / elapsed)
    result["p50_ms"] = round(result.pop("p50_us") / 1000, 1)
    result["p99_ms"] = round(result.pop("p99_us") / 1000, 1)
    return result


def _read_result(path: Path) -> str | None:
    """What agent.lua wrote when wrk ended (a small file, read once); None if nothing."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


async def check(rt: Runtime, stage: Stage) -> dict[str, Any]:
    """After the storms, from the database: orders by status, any order holding other than its quantity (a code
    sold twice shows there: a code names one holder), the ledger, every agent's balance against its floor."""
    async with rt.db.read() as session:
        orders = await order_checks.orders_of_sku(rt.db, session, stage.sku_id)
        balanced = (await ledger.check(session)).ok
        below = await ledger.check_floors(session, stage.account_ids)
    return {
        "orders_by_status": orders.by_status,
        "duplicate_codes": sum(order.short for order in orders.unmatched),
        "unmatched_orders": len(orders.unmatched),
        "ledger_balanced": balanced,
        "balance_never_below_limit": not below,
    }
