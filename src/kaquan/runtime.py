"""Wiring: everything one kaquan process needs, built once from the settings."""

import logging
from dataclasses import dataclass

from redis.asyncio import Redis

from kaquan.inventory import tasks as _inventory_tasks  # noqa: F401  (registers outbox handlers)
from kaquan.inventory.vault import Vault, open_vault
from kaquan.kit.config import Settings
from kaquan.kit.crypto import KeyRing, decode_retired_master_keys, load_or_create_master_key
from kaquan.kit.db import Database
from kaquan.kit.keys import named_key
from kaquan.kit.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from kaquan.orders import tasks as _order_tasks  # noqa: F401  (registers outbox handlers)
from kaquan.orders.service import OrderKeys
from kaquan.payments import registry
from kaquan.payments import tasks as _payment_tasks  # noqa: F401  (registers outbox handlers)
from kaquan.payments.gateway import DevGateway

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    keyring: KeyRing
    vault: Vault
    order_keys: OrderKeys
    dev_gateway: DevGateway
    limiter: RateLimiter
    redis: Redis | None = None

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
        await self.db.dispose()


async def start(settings: Settings, *, db: Database | None = None) -> Runtime:
    """Open the database and keys; the schema must be migrated already (`kaquan migrate`)."""
    db = db or Database(settings.resolved_database_url(), lock_timeout_ms=settings.lock_timeout_ms)
    keyring = KeyRing(
        load_or_create_master_key(settings.master_key, settings.var_dir),
        decode_retired_master_keys(settings.retired_master_keys),
    )
    async with db.transaction() as session:
        vault = await open_vault(db, session, keyring)
        order_keys = OrderKeys(await named_key(db, session, keyring, "orders.lookup"))
        gateway_secret = (
            settings.dev_gateway_secret.encode()
            if settings.dev_gateway_secret
            else await named_key(db, session, keyring, "payments.dev_gateway")
        )
    dev_gateway = DevGateway(gateway_secret)
    registry.register(dev_gateway)
    redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
    limiter: RateLimiter = RedisRateLimiter(redis) if redis is not None else MemoryRateLimiter()
    return Runtime(
        settings=settings,
        db=db,
        keyring=keyring,
        vault=vault,
        order_keys=order_keys,
        dev_gateway=dev_gateway,
        limiter=limiter,
        redis=redis,
    )
