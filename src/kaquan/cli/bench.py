"""`kaquan bench …`: measured speed on the database named by KAQUAN_DATABASE_URL."""

import json
import resource
import secrets
import time
from typing import Annotated

import typer

from kaquan.catalog import service as catalog
from kaquan.catalog.schemas import ProductCreate, SkuCreate
from kaquan.cli import bench_agent, bench_flash
from kaquan.cli.common import console, run
from kaquan.inventory import importing
from kaquan.kit.db import describe
from kaquan.runtime import Runtime

bench = typer.Typer(help="Benchmarks; each ends with one JSON line.", no_args_is_help=True)
bench_agent.register(bench)
bench_flash.register(bench)
_ALNUM = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def generated_file(count: int) -> bytes:
    """`count` random 20-character codes, one per line (random bytes mapped onto a 32-letter alphabet)."""
    raw = secrets.token_bytes(count * 20)
    table = bytes(_ALNUM[b % 32] for b in range(256))
    body = raw.translate(table)
    return b"\n".join(body[i : i + 20] for i in range(0, len(body), 20))


@bench.command("import")
def bench_import(
    count: Annotated[int, typer.Option(min=1, help="how many codes to generate and import")] = 100_000,
) -> None:
    """Generate COUNT codes and import them as one batch through the real import path."""
    data = generated_file(count)

    async def work(rt: Runtime) -> dict[str, object]:
        tag = f"BENCH-{int(time.time())}-{secrets.token_hex(3)}"
        async with rt.db.transaction() as session:
            product = await catalog.create_product(session, ProductCreate(name=tag, kind="voucher"), actor="bench")
            sku = await catalog.create_sku(
                session,
                SkuCreate(product_id=product.id, code=tag, name=tag, face_value_minor=100, price_minor=100),
                actor="bench",
            )
            sku.active = False  # benchmark stock is never for sale
        started = time.perf_counter()
        async with rt.db.transaction() as session:
            result = await importing.import_file(
                rt.db, session, rt.vault, sku, data, importing.BatchMeta(supplier="bench"), actor="bench"
            )
        seconds = time.perf_counter() - started
        return {
            "db": describe(rt.db.url),
            "codes": result.imported,
            "seconds": round(seconds, 3),
            "codes_per_s": round(result.imported / seconds),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        }

    console.print(f"importing {count} generated codes …")
    print(json.dumps(run(work)))
