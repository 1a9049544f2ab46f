"""The cyclic garbage collector of a long-running process, set for a server's heap.

A server process holds a large heap that lives as long as it does (modules, the app and its routes,
Pydantic and SQLAlchemy's compiled models, caches). With Python's default collector every full
collection walks all of it again, and a request allocates enough for a young collection every few
statements: py-spy (`--native`) found `gc_collect_main` under a request's statements, and a full
collection took 100–300 ms of a loaded machine's wall time while every request of the process waited
(docs/shop.md, *Where the CPU went*).

`settle` is called once, when the process has built everything it keeps: what exists then is moved
out of the collector's sight (`gc.freeze`: never freed, never walked again), and young collections
run after `YOUNG_THRESHOLD` net allocations rather than 700. Garbage in reference cycles is still
collected, only less often; objects without cycles are freed by reference counting as always.
"""

import gc

YOUNG_THRESHOLD = 20_000
"""Net allocations between young collections (Python's default is 700): a request's short-lived
objects are mostly freed by reference counting before the threshold is reached."""


def settle() -> None:
    """Collect what start-up left behind, then freeze the rest and space out young collections."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
