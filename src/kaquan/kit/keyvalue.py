"""The Redis client: one server, or a Redis Cluster reached through any of its nodes.

Every key kaquan writes is cluster-safe: a script or transaction touches keys of one
hash slot only, because its keys share a hash tag (`{flash:7}`, `{ip:1.2.3.4}`), and
single-key commands need nothing. `slot_of` is Redis Cluster's own slot function, so
a test can prove each multi-key operation's keys land on one slot without a cluster.
"""

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


def slot_of(key: str) -> int:
    """The Redis Cluster hash slot of `key` (its hash tag's, when it has one)."""
    return int(key_slot(key.encode()))
