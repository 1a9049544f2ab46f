"""What operators' tools ask of a running kaquan: is it alive, is it ready to serve, is its worker working;
and what operators do to it: back it up and restore it (`backups`), hear about what needs them (`alerts`).

Owns one table, `worker_heartbeats`: each worker process stamps it once per pass (at most every
few seconds), so a readiness probe can tell a stalled or dead worker from an idle one. Alerts are
raised through `kit.alerts` (any module may raise one) and sent by `alerts`.
"""

from kaquan.operations.heartbeat import beat, last_beat
from kaquan.operations.readiness import Check, Readiness, check_readiness

__all__ = ["Check", "Readiness", "beat", "check_readiness", "last_beat"]
