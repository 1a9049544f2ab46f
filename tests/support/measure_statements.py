"""Measure reading a large WeChat Pay ALL bill: `python -m tests.support.measure_statements --lines 1000000`.

Not a test (timings vary with the machine and its load): a script that writes
the bill to a temporary file, reads it through `open_statement` on one core
(polars limited to one thread) and prints one JSON line: lines, wall and CPU
seconds, and the peak resident memory, measured once after import and once at
the end, so that the memory the read itself adds is visible.
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("POLARS_MAX_THREADS", "1")  # before polars is imported: "one core"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--file", type=Path, help="read this bill instead of writing one")
    options = parser.parse_args()

    # imported here, after POLARS_MAX_THREADS is set
    from tests.support.statements import write_wechat_bill

    from kaquan.statements import open_statement

    with tempfile.TemporaryDirectory() as folder:
        path = options.file or Path(folder) / "bill.csv"
        if options.file is None:
            write_wechat_bill(path, options.lines)
        rss_before = _peak_rss_mb()
        wall, cpu = time.perf_counter(), time.process_time()
        count = 0
        with path.open("rb") as bill:
            for batch in open_statement("wechatpay", bill).batches(options.batch):
                count += len(batch)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        result = {
            "bench": "statements.wechatpay",
            "lines": count,
            "bytes": path.stat().st_size,
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "peak_rss_mb_before": rss_before,
            "peak_rss_mb_after": _peak_rss_mb(),
            "load_1m": round(os.getloadavg()[0], 1),
            "polars_threads": os.environ["POLARS_MAX_THREADS"],
        }
    print(json.dumps(result))
    sys.stdout.flush()


def _peak_rss_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


if __name__ == "__main__":
    main()
