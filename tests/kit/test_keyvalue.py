"""Every key kaquan writes is Redis Cluster safe, and every Redis-backed part works on a real cluster.

Redis Cluster runs a script or a transaction only when all its keys hash to one slot. kaquan's
multi-key operations are the flash-sale gate's scripts and its view transaction (the event's five
keys) and risk control's window counter script (a subject's three windows); everything else writes
one key per command (rate limits, agent request nonces, spent proof-of-work nonces) and publishes
nothing (no pub/sub). The first tests check the slots with Redis Cluster's own slot function; the
last run each part against a three-node cluster started for the test (when Redis is in the run).
"""

import os
import shutil
import time
import uuid
from collections.abc import Iterator

import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, ResponseError
from tests.support.redis_cluster import redis_cluster

from kaquan.channels.agents import RedisNonces
from kaquan.flashsale.gate import RedisGate, Settlement
from kaquan.kit.config import Settings
from kaquan.kit.keyvalue import connect, slot_of, warm
from kaquan.kit.ratelimit import RedisRateLimiter
from kaquan.risk import RedisCounters, RedisSpentNonces
from kaquan.risk.counters import buckets_at, window_keys

SUBJECTS = ["ip:203.0.113.9", "device:Zr0x3kq9", "contact:9f2c", "sku:GAME-100", "buyer:a@example.com"]


def _gate() -> RedisGate:
    """A gate for naming keys only: the client never connects."""
    return RedisGate(RedisCluster(host="127.0.0.1", port=1))


@pytest.mark.parametrize("event_id", [1, 7, 4096, 987_654_321])
def test_a_flash_events_keys_share_one_slot(event_id: int) -> None:
    keys = _gate().keys(event_id)

    assert len(keys) == 5
    assert len({slot_of(key) for key in keys}) == 1


def test_without_the_hash_tag_an_events_keys_would_spread_over_slots() -> None:
    untagged = [key.replace("{", "").replace("}", "") for key in _gate().keys(7)]

    assert len({slot_of(key) for key in untagged}) > 1


@pytest.mark.parametrize("subject", SUBJECTS)
def test_a_risk_subjects_windows_share_one_slot(subject: str) -> None:
    keys = window_keys(subject, buckets_at(int(time.time())))

    assert len(keys) == 3
    assert len({slot_of(key) for key in keys}) == 1


def test_different_events_and_subjects_spread_over_the_cluster() -> None:
    gate = _gate()
    slots = {slot_of(gate.keys(event)[0]) for event in range(1, 50)}
    slots |= {slot_of(window_keys(subject, buckets_at(0))[0]) for subject in SUBJECTS}

    assert len(slots) > 40


def test_the_cluster_setting_builds_a_cluster_client() -> None:
    settings = Settings(redis_url="redis://127.0.0.1:7001/0", redis_cluster=True)

    assert isinstance(connect(settings.redis_url or "", cluster=settings.redis_cluster), RedisCluster)


needs_redis = pytest.mark.skipif(
    not os.environ.get("KAQUAN_TEST_REDIS_URL"), reason="Redis is not in this run (KAQUAN_TEST_REDIS_URL unset)"
)


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("redis-server") is None:
        raise RuntimeError("KAQUAN_TEST_REDIS_URL is set but redis-server is not installed")
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as url:
        yield url


@needs_redis
async def test_the_flash_gate_admits_settles_and_reloads_on_a_cluster(cluster_url: str) -> None:
    client = connect(cluster_url, cluster=True)
    gate = RedisGate(client)
    try:
        await gate.load(11, tokens=2, buyers={}, open=True, ttl_s=60)
        now = int(time.time() * 1000)
        first = await gate.admit(11, "b1", 1, limit=1, request="r1", now_ms=now, stale_ms=60_000, ip="ip1", ip_limit=5)
        again = await gate.admit(11, "b1", 1, limit=1, request="r1", now_ms=now, stale_ms=60_000)
        second = await gate.admit(11, "b2", 1, limit=1, request="r2", now_ms=now, stale_ms=60_000)
        third = await gate.admit(11, "b3", 1, limit=1, request="r3", now_ms=now, stale_ms=60_000)
        await gate.settle(11, [Settlement("b2", 1, "r2", give_back=True, state=None)], tokens_cap=None)
        view = await gate.view(11)

        assert [first.verdict, again.verdict, second.verdict, third.verdict] == [
            "admitted",
            "duplicate",
            "admitted",
            "sold_out",
        ]
        assert await gate.request_state(11, "r1") == "pending"
        assert view is not None and (view.tokens, view.open, view.buyers) == (1, True, 1)
    finally:
        await client.aclose()


@needs_redis
async def test_limits_counters_and_nonces_work_on_a_cluster(cluster_url: str) -> None:
    client = connect(cluster_url, cluster=True)
    try:
        limiter = RedisRateLimiter(client)
        waits = [await limiter.hit("lookup:203.0.113.9", limit=2, window_s=60) for _ in range(3)]
        await limiter.undo("lookup:203.0.113.9", window_s=60)

        counts = await RedisCounters(client).hit(SUBJECTS)
        counts_again = await RedisCounters(client).hit(SUBJECTS[:1])

        spent = RedisSpentNonces(client)
        until = int(time.time()) + 60
        agent_nonces = RedisNonces(client)

        assert waits[:2] == [0, 0] and waits[2] > 0
        assert await limiter.hit("lookup:203.0.113.9", limit=2, window_s=60) > 0
        assert set(counts.values()) == {1} and len(counts) == 3 * len(SUBJECTS)
        assert set(counts_again.values()) == {2}
        assert [await spent.spend("n-1", until=until), await spent.spend("n-1", until=until)] == [True, False]
        assert [await agent_nonces.first_use("k1", "x", 60), await agent_nonces.first_use("k1", "x", 60)] == [
            True,
            False,
        ]
    finally:
        await client.aclose()


@needs_redis
async def test_the_cluster_refuses_a_script_whose_keys_span_slots(cluster_url: str) -> None:
    """What the hash tags prevent: untagged keys of one script land on different slots and are refused."""
    client = connect(cluster_url, cluster=True)
    untagged = [key.replace("{", "").replace("}", "") for key in _gate().keys(7)]
    try:
        with pytest.raises((RedisClusterException, ResponseError)):
            await client.eval("return 1", len(untagged), *untagged)
    finally:
        await client.aclose()


@needs_redis
async def test_warming_a_client_opens_its_pool_ahead_of_the_first_burst() -> None:
    name = f"kq-warm-{uuid.uuid4().hex[:8]}"
    client = Redis(
        connection_pool=BlockingConnectionPool.from_url(os.environ["KAQUAN_TEST_REDIS_URL"], max_connections=6)
    )
    client.connection_pool.connection_kwargs["client_name"] = name  # every connection it opens names itself
    probe = connect(os.environ["KAQUAN_TEST_REDIS_URL"], cluster=False, connections=1)
    try:
        await warm(client, 6)
        opened = [c for c in await probe.client_list() if c["name"] == name]
    finally:
        await client.aclose()
        await probe.aclose()

    assert len(opened) == 6
