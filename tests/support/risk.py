"""Risk helpers shared by the risk, web and order-path tests."""

from kaquan.kit import clock


def windows_far_from_their_ends() -> None:
    """Counters use fixed windows: stand at 12:00:01 UTC tomorrow, so no test's counts straddle a boundary."""
    now = clock.now().timestamp()
    clock.travel(86400 - now % 86400 + 12 * 3600 + 1)
