"""Wiring: everything one kaquan process needs, built once from the settings."""

import logging
from dataclasses import dataclass

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from kaquan.buyers import tasks as buyer_tasks
from kaquan.buyers.service import Verification
from kaquan.channels.agents import AgentOrders, Authenticator, DatabaseNonces, NonceStore, RedisNonces
from kaquan.flashsale.gate import Gate, MemoryGate, RedisGate
from kaquan.flashsale.purchase import FlashSale
from kaquan.inventory import Vault, open_vault
from kaquan.kit import keyvalue
from kaquan.kit.config import Settings
from kaquan.kit.crypto import KeyRing, decode_retired_master_keys, load_or_create_master_key
from kaquan.kit.db import Database
from kaquan.kit.errors import DomainError
from kaquan.kit.keys import named_key
from kaquan.kit.keyvalue import RedisClient, connect
from kaquan.kit.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from kaquan.notifications import tasks as notification_tasks
from kaquan.operations import alerts as operator_alerts
from kaquan.orders import tasks as _order_tasks  # noqa: F401  (registers outbox handlers)
from kaquan.orders.service import OrderKeys
from kaquan.payments import registry
from kaquan.payments import tasks as _payment_tasks  # noqa: F401  (registers outbox handlers)
from kaquan.payments.dev import DevGateway
from kaquan.payments.errors import DevGatewayDisabled
from kaquan.payments.gateway import Gateway
from kaquan.payments.plugins import GatewaySetup, Simulation, load_plugins
from kaquan.redemption import tasks as _redemption_tasks  # noqa: F401  (registers outbox handlers)
from kaquan.risk import (
    DatabaseCounters,
    DatabaseSpentNonces,
    DecisionLog,
    ProofOfWork,
    RedisCounters,
    RedisSpentNonces,
    RiskEngine,
    SpentNonces,
    VelocityCounters,
)
from kaquan.risk.learning import Retrainer

log = logging.getLogger(__name__)
FLASH_SIDE_CONNECTIONS = 4  # the changes subscription holds one; sold-out copies take another now and then


@dataclass
class Runtime:
    settings: Settings
    db: Database
    keyring: KeyRing
    vault: Vault
    order_keys: OrderKeys
    gateway: Gateway | None  # where new payments go; None: no gateway is configured and the shop takes no orders
    dev: DevGateway | None  # only with KAQUAN_DEV_GATEWAY=1
    simulations: list[Simulation]  # provider simulators to mount, only with KAQUAN_GATEWAY_SIMULATORS=1
    limiter: RateLimiter
    agent_auth: Authenticator
    agent_orders: AgentOrders
    flash: FlashSale
    buyers: Verification
    risk: RiskEngine
    retrainer: Retrainer
    redis: RedisClient | None = None
    risk_redis: RedisClient | None = None  # risk's counters on a pool of their own: they never wait behind the gate
    flash_redis: RedisClient | None = None  # the flash-sale gate's changes channel and sold-out copies

    @property
    def dev_gateway(self) -> DevGateway:
        """The dev gateway, which marks any order paid for whoever holds its pay link; refused unless enabled."""
        if self.dev is None:
            raise DevGatewayDisabled()
        return self.dev

    async def warm(self) -> None:
        """Open connections a burst would otherwise wait for (a server process, at start-up); failures only warn.

        The first thousand requests of a flash sale's storm each waited for a Redis handshake of their own
        (the gate's pool, risk's), and its first batch for the commit loop's database connections.
        """
        for client in (self.redis, self.risk_redis):
            if client is not None:
                try:
                    await keyvalue.warm(client)
                except (RedisError, OSError) as exc:
                    log.warning("redis connections not opened ahead: %s", exc)
        try:
            await self.flash.warm()
        except (SQLAlchemyError, OSError, DomainError) as exc:
            log.warning("flash-sale commit connections not opened ahead: %s", type(exc).__name__)

    async def close(self) -> None:
        await self.risk.close()
        await self.flash.close()
        await self.agent_orders.close()
        for client in (self.redis, self.risk_redis, self.flash_redis):
            if client is not None:
                await client.aclose()
        await self.db.dispose()


async def start(settings: Settings, *, db: Database | None = None) -> Runtime:
    """Open the database and keys; the schema must be migrated already (`kaquan migrate`)."""
    db = db or Database(
        settings.resolved_database_url(),
        lock_timeout_ms=settings.lock_timeout_ms,
        read_url=settings.read_database_url,
        read_max_lag_s=settings.read_max_lag_s,
    )
    keyring = KeyRing(
        load_or_create_master_key(settings.master_key, settings.var_dir),
        decode_retired_master_keys(settings.retired_master_keys),
    )
    async with db.transaction() as session:
        vault = await open_vault(db, session, keyring)
        order_keys = OrderKeys(await named_key(db, session, keyring, "orders.lookup"))
        buyers = await Verification.load(db, session, keyring, settings)
        challenge_key = await named_key(db, session, keyring, "risk.challenge")
        dev = (
            DevGateway(
                settings.dev_gateway_secret.encode()
                if settings.dev_gateway_secret
                else await named_key(db, session, keyring, "payments.dev_gateway")
            )
            if settings.dev_gateway
            else None
        )
    setup = GatewaySetup(settings=settings, public_url=settings.public_url, state_dir=settings.var_dir / "gateways")
    simulations = [plugin.simulated(setup) for plugin in load_plugins()] if settings.gateway_simulators else []
    configured = [found for plugin in load_plugins() if (found := plugin.configured(setup)) is not None]
    gateways: list[Gateway] = [*configured, *(s.gateway for s in simulations), *([dev] if dev is not None else [])]
    registry.configure(gateways, public_url=settings.public_url)
    gateway = gateways[0] if gateways else None
    redis = connect(settings.redis_url, cluster=settings.redis_cluster) if settings.redis_url else None
    limiter: RateLimiter = RedisRateLimiter(redis) if redis is not None else MemoryRateLimiter()
    nonces: NonceStore = RedisNonces(redis) if redis is not None else DatabaseNonces(db)
    # The gate's changes channel and sold-out copies on a pool of their own: a storm's backlog never delays them.
    flash_redis = (
        connect(settings.redis_url, cluster=settings.redis_cluster, connections=FLASH_SIDE_CONNECTIONS)
        if settings.redis_url
        else None
    )
    gate: Gate = RedisGate(redis, side=flash_redis) if redis is not None else MemoryGate()
    buyer_tasks.install(buyer_tasks.CodeSender(buyers))
    risk_redis = connect(settings.redis_url, cluster=settings.redis_cluster) if settings.redis_url else None
    counters: VelocityCounters = RedisCounters(risk_redis) if risk_redis is not None else DatabaseCounters(db)
    spent: SpentNonces = RedisSpentNonces(risk_redis) if risk_redis is not None else DatabaseSpentNonces(db)
    risk = RiskEngine(
        db,
        settings,
        counters,
        ProofOfWork(challenge_key, spent, ttl_s=settings.risk_pow_ttl_s),
        DecisionLog(db, prune=(counters.prune, spent.prune)),
    )
    notification_tasks.install(settings)
    operator_alerts.install(settings)
    return Runtime(
        settings=settings,
        db=db,
        keyring=keyring,
        vault=vault,
        order_keys=order_keys,
        gateway=gateway,
        dev=dev,
        simulations=simulations,
        limiter=limiter,
        agent_auth=Authenticator(db, keyring, nonces, window_s=settings.api_window_s),
        agent_orders=AgentOrders(db, vault, max_per_order=settings.max_per_order),
        flash=FlashSale(
            db,
            settings,
            gate,
            keyring=keyring,
            order_keys=order_keys,
            gateway=gateway,
            shared_gate=redis is not None,
        ),
        buyers=buyers,
        risk=risk,
        retrainer=Retrainer(settings.risk_retrain_every_s),
        redis=redis,
        risk_redis=risk_redis,
        flash_redis=flash_redis,
    )
