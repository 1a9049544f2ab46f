"""Flash-sale fixtures: a gate of each kind and a FlashSale on it (defined in support, shared with tests/web)."""

from tests.flashsale.support import flash, gate

__all__ = ["flash", "gate"]
