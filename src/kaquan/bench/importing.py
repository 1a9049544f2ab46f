"""`kaquan bench import`: generated codes imported as one batch through the real import path."""

import resource
import secrets
import time

from kaquan.bench.harness import generated_file
from kaquan.catalog import service as catalog
from kaquan.catalog.schemas import ProductCreate, SkuCreate
from kaquan.inventory import importing
from kaquan.kit.db import describe
from kaquan.runtime import Runtime


async def run(rt: Runtime, count: int) -> dict[str, object]:
    """Import `count` generated codes into a SKU of their own (never for sale); the JSON line's fields."""
    data = generated_file(count)
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
