"""Flash-sale fixtures: a gate of each kind and a FlashSale on it (defined in tests/support/flash.py)."""

from tests.support.flash import flash, gate

__all__ = ["flash", "gate"]
