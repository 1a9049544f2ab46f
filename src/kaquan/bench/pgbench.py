"""The database's own speed for a purchase, measured with `pgbench` (PostgreSQL's client package) in the same run.

Each transaction claims codes of a SKU never for sale with the claim the product uses (the
available codes of one SKU and warehouse, FEFO order, `FOR UPDATE SKIP LOCKED`), inserts one
pending order per code and hands each code to its order (reserved, held 15 minutes): the least
any purchase must write, with none of the order service's rules. `single`: one code per
transaction; `batched`: 100, as a group commit does. Like the old Python baseline, this is the
one place the bench writes other modules' tables itself, on purpose and on its own SKU only.
"""

import asyncio
import glob
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

MISSING = "pgbench is not installed: `apt-get install postgresql-client` (Debian/Ubuntu), then run the benchmark again"
BATCH = 100

# pgbench substitutes :sku, :warehouse, :batch and :tag as text (simple query mode).
CLAIM_SQL = """
BEGIN;
WITH claimed AS (
  SELECT id FROM inventory_codes
  WHERE sku_id = :sku AND warehouse_id = :warehouse AND status = 'available'
  ORDER BY expires_on, id LIMIT :batch FOR UPDATE SKIP LOCKED
), placed AS (
  INSERT INTO orders (number, channel, source, idempotency_key, request_hash, sku_id, quantity, unit_price_minor,
                      total_minor, currency, status, contact, lang, created_at, expires_at)
  SELECT 'PGB' || md5(:tag || claimed.id::text)::varchar(24), 'bench', 'pgbench', :tag || '-' || claimed.id, '',
         :sku, 1, 990, 990, 'CNY', 'pending_payment', '', 'zh', now(), now() + interval '15 minutes'
  FROM claimed
  RETURNING id, idempotency_key
)
UPDATE inventory_codes SET status = 'reserved', order_id = placed.id, hold_until = now() + interval '15 minutes'
FROM placed WHERE inventory_codes.id = split_part(placed.idempotency_key, '-', 2)::bigint;
END;
"""


@dataclass(frozen=True)
class Claims:
    """One pgbench run: transactions per second and codes claimed per second."""

    tps: float
    codes_per_s: float


def find_pgbench() -> str | None:
    """`pgbench` on the PATH, else in PostgreSQL's own bin folder (Debian keeps it there), newest version first."""
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"), key=_version, reverse=True)
    return candidates[0] if candidates else None


def _version(path: str) -> int:
    match = re.search(r"/postgresql/(\d+)/", path)
    return int(match[1]) if match else 0


def libpq_url(url: str) -> str:
    """The database URL as libpq reads it (no SQLAlchemy driver name).

    Several hosts, which SQLAlchemy takes as `?host=a:5432&host=b:5432` (a primary and its replica), go
    into the address as libpq wants them: `postgresql://user@a:5432,b:5432/db`.
    """
    parsed = make_url(url).set(drivername="postgresql")
    hosts = parsed.query.get("host")
    if isinstance(hosts, tuple) and parsed.host is None:
        rendered = parsed.difference_update_query(["host"]).render_as_string(hide_password=False)
        scheme, _, rest = rendered.partition("://")
        user, at, path = rest.rpartition("@")
        return f"{scheme}://{user}{at}{','.join(hosts)}{path}"
    return parsed.render_as_string(hide_password=False)


async def claims(
    pgbench: str, url: str, *, sku_id: int, warehouse_id: int, batch: int, clients: int, transactions: int, tag: str
) -> Claims:
    """`clients` connections each running `transactions` claim transactions of `batch` codes."""
    with tempfile.TemporaryDirectory(prefix="kaquan-pgbench-") as scratch:
        script = Path(scratch) / "claim.sql"
        script.write_text(CLAIM_SQL)
        command = [
            pgbench,
            "--no-vacuum",
            "--client",
            str(clients),
            "--jobs",
            str(min(clients, 2)),
            "--transactions",
            str(transactions),
            "--file",
            str(script),
            "--define",
            f"sku={sku_id}",
            "--define",
            f"warehouse={warehouse_id}",
            "--define",
            f"batch={batch}",
            "--define",
            f"tag='{tag}'",
            libpq_url(url),
        ]
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await process.communicate()
    text = out.decode(errors="replace")
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", text)
    if process.returncode != 0 or match is None:
        raise RuntimeError(f"pgbench failed ({process.returncode}): {text[-2000:]}")
    tps = float(match[1])
    return Claims(tps, tps * batch)
