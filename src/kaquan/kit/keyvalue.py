"""The Redis client: one server, or a Redis Cluster reached through any of its nodes.

Every key kaquan writes is cluster-safe: a script or transaction touches keys of one
hash slot only, because its keys share a hash tag (`{flash:7}`, `{ip:1.2.3.4}`), and
single-key commands need nothing. `slot_of` is Redis Cluster's own slot function, so
a test can prove each multi-key operation's keys land on one slot without a cluster.
"""

import asyncio

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

RedisClient = Redis | RedisCluster
CONNECTIONS = 64
WAIT_S = 5


def connect(url: str, *, cluster: bool, connections: int = CONNECTIONS) -> RedisClient:
    """A client whose callers wait (briefly) for a free connection under load instead of failing at once.

    With `cluster`, `url` names any one node (`redis://127.0.0.1:7001/0`); the client learns the others,
    follows slots as they move, and after a failover talks to the promoted replica.
    """
    if cluster:
        return RedisCluster.from_url(url, max_connections=connections)
    pool = BlockingConnectionPool.from_url(url, max_connections=connections, timeout=WAIT_S)
    return Redis(connection_pool=pool)


async def warm(client: RedisClient, connections: int = CONNECTIONS) -> None:
    """Open up to `connections` of the client's pool now, so that a burst does not pay for the handshakes.

    Each new connection costs its own round trips (HELLO, CLIENT SETINFO) on the loop that asked for it:
    at the start of a flash sale's storm, the first thousand requests paid for them while they queued.
    A cluster client learns its nodes instead.
    """
    if isinstance(client, RedisCluster):
        await client.initialize()
        return
    pool = client.connection_pool
    opened = await asyncio.gather(*(pool.get_connection() for _ in range(connections)))  # type: ignore[no-untyped-call]
    for connection in opened:
        await pool.release(connection)


def slot_of(key: str) -> int:
    """The Redis Cluster hash slot of `key` (its hash tag's, when it has one)."""
    return int(key_slot(key.encode()))
