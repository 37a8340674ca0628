#!/usr/bin/env python3
"""A small benchmark that logs as filecoin's `benchy` does: phase start and
end lines with a timestamp, progress lines in between, and a JSON report with
per-phase wall and CPU times at the end. Each phase hashes a buffer for
--work units on --threads processes, writing its temp data under --cache-dir.

    python3 examples/benchy_like.py --threads 2 --work 20 --cache-dir /tmp/x > benchy-2cpu-1.log

The lines it prints (time in the host's local zone unless --utc):

    thread_id: ThreadId(1) 2026-12-02 01:30:00.123 INFO [filecoin_proofs::api::seal_pledge] \
seal_pre_commit_phase1: start
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

PHASES = [
    ("p1", "filecoin_proofs::api::seal_pledge", "seal_pre_commit_phase1: start",
     "seal_pre_commit_phase1: finish"),
    ("p2", "filecoin_proofs::api::seal_pledge", "seal_pre_commit_phase2_all_zero: start",
     "p34 disabled"),
]  # fmt: skip


def log(args: argparse.Namespace, module: str, text: str, thread: int = 1) -> None:
    now = datetime.now(UTC) if args.utc else datetime.now()
    stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    print(f"thread_id: ThreadId({thread}) {stamp} INFO [{module}] {text}", flush=True)


def work(units: int, seed: int) -> str:
    h = hashlib.sha256(str(seed).encode())
    block = os.urandom(1 << 16)
    for _ in range(units * 40):
        h.update(block)
    return h.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", type=int, default=10, help="units of hashing per phase and thread")
    ap.add_argument("--cache-dir", default=os.environ.get("TMPDIR", "/tmp"))
    ap.add_argument("--utc", action="store_true", help="print times in UTC")
    ap.add_argument("--fail-in", help="stop in this phase without its end line (a crash)")
    args = ap.parse_args()
    cache = Path(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    report: dict[str, float] = {}
    log(args, "benchy::force", f"benchy force: threads={args.threads} cache={cache}")
    with ProcessPoolExecutor(args.threads) as pool:
        for name, module, start, end in PHASES:
            log(args, module, start)
            t0 = time.monotonic()
            for i, digest in enumerate(pool.map(work, [args.work] * args.threads, range(9))):
                log(args, "storage_proofs_porep::stacked", f"layer {i} done: {digest[:16]}", i + 2)
            (cache / f"{name}.tmp").write_bytes(b"\0" * 4096)
            if args.fail_in == name:
                print("thread 'main' panicked at 'index out of range'", file=sys.stderr)
                return 101
            log(args, "benchy::force" if name == "p2" else module, end)
            report[f"{name}-wall-time-ms"] = round((time.monotonic() - t0) * 1000, 3)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
