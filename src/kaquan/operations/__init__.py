"""What operators' tools ask of a running kaquan: is it alive, is it ready to serve, is its worker working.

Owns one table, `worker_heartbeats`: each worker process stamps it once per pass (at most every
few seconds), so a readiness probe can tell a stalled or dead worker from an idle one.
"""

from kaquan.operations.heartbeat import beat, last_beat
from kaquan.operations.readiness import Check, Readiness, check_readiness

__all__ = ["Check", "Readiness", "beat", "check_readiness", "last_beat"]
