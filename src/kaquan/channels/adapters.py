"""Channel adapters: how orders arrive from outside the shop, plugged in through Python entry points.

An adapter is any object with a `name`, a `description` and a FastAPI `router`,
published under the `kaquan.channels` entry-point group:

    [project.entry-points."kaquan.channels"]
    my_store = "my_package.adapter:adapter"

kaquan ships two: the open API for agents and the marketplace adapter. A third
party adds a channel by installing a package, without touching kaquan.
"""

from functools import cache
from importlib.metadata import entry_points
from typing import Protocol

from fastapi import APIRouter

GROUP = "kaquan.channels"


class ChannelAdapter(Protocol):
    name: str
    description: str
    router: APIRouter


@cache
def load_adapters() -> tuple[ChannelAdapter, ...]:
    """Every installed adapter, by entry-point name (a broken plugin fails loudly at start)."""
    found = sorted(entry_points(group=GROUP), key=lambda point: point.name)
    return tuple(point.load() for point in found)


class Adapter:
    """The plain adapter the shipped channels use."""

    def __init__(self, name: str, description: str, router: APIRouter) -> None:
        self.name = name
        self.description = description
        self.router = router
