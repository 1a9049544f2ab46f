"""Redis databases for parallel test workers.

Tests clear `kaquan:*` keys before each Redis-backed test, so two pytest-xdist
workers on one Redis database would clear each other's counters mid-test. Each
worker gets a database number of its own (1, 2, …); database 0 holds only the
reservations of the process-fault tests, which take numbers from the top down.
"""

import os
from urllib.parse import urlsplit

WORKER_DATABASES = 7  # xdist workers 0-6 use databases 1-7; fault tests reserve 8-15


def worker_index() -> int:
    """This xdist worker's number (`gw3` → 3), 0 outside xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(name.removeprefix("gw"))


def worker_redis_url() -> str | None:
    """KAQUAN_TEST_REDIS_URL on this worker's own database, exported so tests reading the variable agree."""
    url = os.environ.get("KAQUAN_TEST_REDIS_URL")
    if url is None or "PYTEST_XDIST_WORKER" not in os.environ:
        return url
    index = worker_index()
    if index >= WORKER_DATABASES:
        raise RuntimeError(f"at most {WORKER_DATABASES} xdist workers share one Redis server")
    own = on_database(url, index + 1)
    os.environ["KAQUAN_TEST_REDIS_URL"] = own
    return own


def on_database(url: str, number: int) -> str:
    return urlsplit(url)._replace(path=f"/{number}").geturl()
