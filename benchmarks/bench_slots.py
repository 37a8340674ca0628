"""Cpuset slots (issue "bench"): isolation and overhead against the practice
they replace, side by side in one run.

    .venv/bin/python benchmarks/bench_slots.py [--rounds 10]

One local agent (run_fanout.shoal_cluster, as benchmarks/sandbox.py: a
LocalCluster in a temporary SHOAL_HOME with a CA of its own, on loopback),
driven through shoal.fanout.run as `shoal bench` drives it. Slot 0 is
Resources(cpus="0", mems="0"), slot 1 Resources(cpus="1", mems="0").

1. Isolation. A CPU-bound Python loop of about 2.5 s (sandbox.py's LOOP,
   calibrated first) runs while a hog runs beside it: two busy loops and one
   copying between two 256 MiB buffers (three processes, not threads: the
   GIL would let two busy threads use one CPU). With slots: the loop in
   slot 0, the hog in slot 1. Without cpusets: the same two shoal sandboxes
   with no CPUs given, both floating over both CPUs. Interleaved, which goes
   first alternating, each measurement with a hog of its own (started, seen
   running with the expected affinity, then stopped and seen gone).
   Reported: the coefficient of variation (sd/mean) of the loop's wall time
   on the node with and without slots, and their ratio (target: at most 1/3).
2. Overhead. A CPU-bound loop of about 5 s in slot 1 against the same
   command under `taskset -c 1` started directly (sandbox.py's loop_seconds),
   interleaved, which goes first alternating. Reported: the medians (on the
   node; around the process) and their relative difference (target: within
   1 %), and the CPU time of the same runs.

Needs root and cgroups with the cpuset controller (v1 here), and CPUs 0 and 1.
Writes benchmarks/results/bench_slots.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run_fanout import shoal_cluster
from sandbox import LOOP, loop_seconds, row

from shoal import fanout
from shoal.core.config import Settings
from shoal.fanout import NodeResult, Resources

OUT = Path(__file__).resolve().parent / "results"
NODE = "node1"
SLOT = [Resources(cpus="0", mems="0"), Resources(cpus="1", mems="0")]
FLOAT = Resources()  # no cpuset asked: the sandbox gets every CPU the agent has
ISOLATION_S, OVERHEAD_S = 2.5, 5.0
TARGET_CV_RATIO = 1 / 3
TARGET_OVERHEAD_PCT = 1.0
TAG = f"shoal-bench-slots-hog-{os.getpid()}"  # in the hog's argv: found with psutil
BUSY = f"python3 -c 'while True: pass' {TAG}"
COPY = (
    'python3 -c \'a = bytearray(256 << 20)\nb = bytearray(b"x" * (256 << 20))\n'
    f"while True: a[:] = b; b[:] = a' {TAG}"
)
HOG = f"{BUSY} & {BUSY} & {COPY} & wait"
HOG_PROCS = 3
SETTLE = 0.5  # s: the hog's buffers are made and it is at full load


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def hogs() -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if TAG in (p.info["cmdline"] or []) and "python3" in p.info["cmdline"][0]:
            found.append(p)
    return found


def node_of(report: fanout.Report, what: str) -> NodeResult:
    r = report[NODE]
    if not r.ok:
        raise SystemExit(f"{what}: {r.state} {r.reason} {r.stderr.strip()[-300:]}")
    return r


async def until(ok: Callable[[], bool], hog: asyncio.Task[Any] | None, what: str) -> None:
    deadline = time.monotonic() + 20
    while not ok():
        if hog is not None and hog.done():
            node_of(hog.result(), "the hog")
            raise SystemExit("the hog ended by itself")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def beside_hog(
    cmd: str, bench: Resources, hog_res: Resources, cpus: set[int], settings: Settings
) -> NodeResult:
    """cmd in `bench` while the hog runs in `hog_res` (its processes' affinity: cpus)."""
    hog = asyncio.create_task(fanout.run_async(NODE, HOG, resources=hog_res, settings=settings))
    try:
        await until(lambda: len(hogs()) == HOG_PROCS, hog, "the hog to start")
        got = {frozenset(p.cpu_affinity() or ()) for p in hogs()}
        if got != {frozenset(cpus)}:
            raise SystemExit(f"the hog runs on CPUs {got}, not {cpus}")
        await asyncio.sleep(SETTLE)
        rep = await fanout.run_async(NODE, cmd, resources=bench, settings=settings)
        return node_of(rep, "the benchmark")
    finally:
        hog.cancel()  # stops its sandbox on the agent: every process in it
        with contextlib.suppress(asyncio.CancelledError):
            await hog
        await until(lambda: not hogs(), None, "the hog to be killed")


def cv(xs: list[float]) -> float:
    return statistics.stdev(xs) / statistics.mean(xs)


def summary(wall: list[float], cpu: list[float]) -> dict[str, Any]:
    return {
        "wall_s_mean": round(statistics.mean(wall), 4),
        "wall_s_median": round(statistics.median(wall), 4),
        "wall_s_sd": round(statistics.stdev(wall), 4),
        "cv_pct": round(100 * cv(wall), 3),
        "wall_s_all": [round(x, 4) for x in wall],
        "cpu_s_median": round(statistics.median(cpu), 4),
    }


async def isolation(rounds: int, n: int, settings: Settings) -> dict[str, Any]:
    cmd = LOOP.format(n=n)
    cases = {  # loop's sandbox, hog's sandbox, the CPUs the hog may use
        "slots": (SLOT[0], SLOT[1], {1}),
        "no_cpusets": (FLOAT, FLOAT, {0, 1}),
    }
    print(f"1. isolation: a {ISOLATION_S:g} s loop ({n} iterations) beside a hog, {rounds} rounds")
    wall: dict[str, list[float]] = {k: [] for k in cases}
    cpu: dict[str, list[float]] = {k: [] for k in cases}
    for i in range(rounds):
        order = list(cases) if i % 2 == 0 else list(cases)[::-1]
        for k in order:
            r = await beside_hog(cmd, *cases[k], settings)
            wall[k].append(r.wall_s)
            cpu[k].append(r.cpu_ns / 1e9)
        # The machine's own floor: the loop in slot 0 with no hog at all.
        alone = node_of(await fanout.run_async(NODE, cmd, resources=SLOT[0], settings=settings),
                        "the benchmark alone")  # fmt: skip
        wall.setdefault("alone", []).append(alone.wall_s)
        cpu.setdefault("alone", []).append(alone.cpu_ns / 1e9)
        print(f"  round {i + 1}/{rounds}: " + ", ".join(
            f"{k} {wall[k][-1]:.3f} s (CPU {cpu[k][-1]:.3f})" for k in cases))  # fmt: skip
    res: dict[str, Any] = {"iterations": n, "rounds": rounds, "hog": HOG}
    for k in wall:
        res[k] = summary(wall[k], cpu[k])
    res["cv_needed_pct"] = round(100 * cv(wall["no_cpusets"]) * TARGET_CV_RATIO, 3)
    ratio = cv(wall["slots"]) / cv(wall["no_cpusets"])
    res["cv_ratio"] = round(ratio, 4)
    res["target_cv_ratio_max"] = round(TARGET_CV_RATIO, 4)
    res["target_met"] = ratio <= TARGET_CV_RATIO
    return res


def overhead(rounds: int, n: int, settings: Settings) -> dict[str, Any]:
    cmd = LOOP.format(n=n)
    cpu_no = int(SLOT[1].cpus)
    print(f"2. overhead: a {OVERHEAD_S:g} s loop ({n} iterations) in slot 1 vs taskset -c {cpu_no}")
    boxed: list[float] = []
    pinned: list[float] = []
    boxed_cpu: list[float] = []
    pinned_cpu: list[float] = []

    def slot() -> None:
        r = node_of(fanout.run(NODE, cmd, resources=SLOT[1], settings=settings), "slot 1")
        boxed.append(r.wall_s)
        boxed_cpu.append(r.cpu_ns / 1e9)

    again: list[float] = []  # taskset a second time: the machine's own A/A spread

    def taskset() -> None:
        w, c = loop_seconds(n, cpu_no)
        pinned.append(w)
        pinned_cpu.append(c)

    def taskset_again() -> None:
        again.append(loop_seconds(n, cpu_no)[0])

    for i in range(rounds):
        arms = (slot, taskset, taskset_again)
        for f in arms if i % 2 == 0 else arms[::-1]:
            f()
        print(
            f"  round {i + 1}/{rounds}: slot {boxed[-1]:.3f} s (CPU {boxed_cpu[-1]:.3f}),"
            f" taskset {pinned[-1]:.3f} s (CPU {pinned_cpu[-1]:.3f})"
        )
    b, p = statistics.median(boxed), statistics.median(pinned)
    bc, pc = statistics.median(boxed_cpu), statistics.median(pinned_cpu)
    diff = 100 * (b / p - 1)
    return {
        "cpu": cpu_no,
        "iterations": n,
        "rounds": rounds,
        "slot_s_median": round(b, 4),
        "slot_s_all": [round(x, 4) for x in boxed],
        "taskset_s_median": round(p, 4),
        "taskset_s_all": [round(x, 4) for x in pinned],
        "difference_pct": round(diff, 2),
        "taskset_again_s_median": round(statistics.median(again), 4),
        "a_a_difference_pct": round(100 * (statistics.median(again) / p - 1), 2),
        "cpu_s_median": {"slot": round(bc, 4), "taskset": round(pc, 4)},
        "cpu_difference_pct": round(100 * (bc / pc - 1), 2),
        "target_pct": TARGET_OVERHEAD_PCT,
        "target_met": abs(diff) <= TARGET_OVERHEAD_PCT,
    }


def check_cpusets(settings: Settings) -> dict[str, str]:
    """What each sandbox's processes may run on, as the kernel says: the agent
    makes the cpusets (an agent without them fails the slots here)."""
    seen = {}
    for name, res, want in (("slot 0", SLOT[0], "0"), ("slot 1", SLOT[1], "1"),
                            ("no cpusets", FLOAT, "0-1")):  # fmt: skip
        r = fanout.run(NODE, "grep Cpus_allowed_list /proc/self/status", resources=res,
                       settings=settings)  # fmt: skip
        if not r[NODE].ok:
            raise SystemExit(
                f"{name}: the agent could not make the sandbox ({r[NODE].reason}"
                f" {r[NODE].stderr.strip()}): slots need cgroups with cpuset"
            )
        seen[name] = r[NODE].stdout.split(":")[-1].strip()
        if seen[name] != want:
            raise SystemExit(f"{name} runs on CPUs {seen[name]}, not {want}: no cpuset here?")
    return seen


def preflight() -> str:
    if os.geteuid() != 0:
        return "needs root: slots are cpuset cgroups that the agent makes"
    try:
        enabled = {ln.split()[0] for ln in Path("/proc/cgroups").read_text().splitlines()[1:]
                   if ln.split()[-1] == "1"}  # fmt: skip
    except OSError:
        enabled = set()
    if "cpuset" not in enabled:
        return "needs cgroups with the cpuset controller (/proc/cgroups)"
    if not {0, 1} <= os.sched_getaffinity(0):
        return "needs CPUs 0 and 1 (one per slot) in this process's affinity"
    if shutil.which("taskset") is None:
        return "needs taskset (util-linux)"
    return ""


def autogroup() -> str:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip()
    except OSError:
        return "absent"


def markdown(res: dict[str, Any]) -> str:
    iso, ov = res["isolation"], res["overhead"]
    s, f = iso["slots"], iso["no_cpusets"]
    met = {True: "met", False: "**missed**"}
    keys = ("wall_s_mean", "wall_s_median", "wall_s_sd", "cv_pct", "cpu_s_median")
    return "\n".join(
        [
            "# Cpuset slots: isolation and overhead (benchmarks/bench_slots.py)",
            "",
            f"{res['date']}, {res['machine']}. Load average at the start {res['loadavg_start']},"
            f" at the end {res['loadavg_end']}: the machine is shared and may have been under"
            " other load during the run (that load is in no cpuset and floats over both CPUs).",
            "",
            "One local agent; every command in a shoal sandbox through `shoal.fanout.run`."
            f" Slot 0: `cpus=\"0\", mems=\"0\"`, slot 1: `cpus=\"1\", mems=\"0\"`. CPUs the"
            f" sandboxes got (/proc/self/status): {res['cpusets']}.",
            "",
            "## Isolation: a CPU-bound loop beside a CPU and memory hog",
            "",
            f"A Python loop of {iso['iterations']} iterations (about {ISOLATION_S:g} s alone),"
            f" {iso['rounds']} runs each, interleaved; beside it a hog of two busy loops and a"
            " copy between two 256 MiB buffers (three processes), started afresh for each run."
            " With slots: the loop in slot 0, the hog in slot 1. Without cpusets: the same"
            " sandboxes with no CPUs given (both float over both CPUs). Wall time on the node.",
            "",
            f"kernel.sched_autogroup_enabled = {res['sched_autogroup']}: with 1, each command"
            " (a session of its own) gets an equal share of CPU time, so without cpusets the"
            " loop still gets about one CPU's worth; what varies is where and when it runs.",
            "",
            row("", "wall s (mean)", "wall s (median)", "sd s", "CV %", "CPU s (median)"),
            "|---|---:|---:|---:|---:|---:|",
            row("slots (loop on CPU 0, hog on CPU 1)", *(s[k] for k in keys)),
            row("no cpusets (both float)", *(f[k] for k in keys)),
            row("alone in slot 0, no hog (this machine's floor)", *(iso["alone"][k] for k in keys)),
            "",
            f"The target asks the slots' CV to be at most {iso['cv_needed_pct']} %; the same loop"
            f" alone, nothing beside it, varies by {iso['alone']['cv_pct']} % on this machine.",
            "",
            f"CV ratio (slots / no cpusets): {iso['cv_ratio']} (target: at most 1/3:"
            f" {met[iso['target_met']]}).",
            "",
            f"## Overhead: a CPU-bound loop of about {OVERHEAD_S:g} s, slot 1 vs"
            f" `taskset -c {ov['cpu']}`",
            "",
            f"{ov['iterations']} iterations, interleaved (which goes first alternates),"
            f" median of {ov['rounds']}. The slot's time is on the node (the sandbox's"
            " making and release included), taskset's around the process.",
            "",
            row("", "wall s (median)", "CPU s (median)"),
            "|---|---:|---:|",
            row("shoal slot 1 (`cpus=\"1\", mems=\"0\"`)", ov["slot_s_median"],
                ov["cpu_s_median"]["slot"]),
            row(f"`taskset -c {ov['cpu']}` (subprocess)", ov["taskset_s_median"],
                ov["cpu_s_median"]["taskset"]),
            row(f"`taskset -c {ov['cpu']}` again (the same arm twice)",
                ov["taskset_again_s_median"], "-"),
            "",
            f"The same taskset arm run twice differs by {ov['a_a_difference_pct']} %: the"
            " spread of this machine between two identical arms.",
            "",
            f"Difference: {ov['difference_pct']} % (target: within {ov['target_pct']} %:"
            f" {met[ov['target_met']]}); of the CPU time: {ov['cpu_difference_pct']} %.",
            "",
        ]
    )  # fmt: skip


def real_python3() -> None:
    """Put the directory of the interpreter `python3` runs first on PATH (this
    process's, so the agent's and its commands'): a pyenv shim's bash costs
    about 0.1 s per start, noise on both sides of every comparison."""
    out = subprocess.run(["python3", "-c", "import sys; print(sys.executable)"],
                         capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    os.environ["PATH"] = os.pathsep.join([str(Path(out).parent), os.environ.get("PATH", "")])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=10, help="repetitions of each (default 10)")
    a = ap.parse_args()
    if a.rounds < 2:
        ap.error("--rounds must be at least 2 (a standard deviation)")
    why = preflight()
    if why:
        print(f"bench_slots: {why}", file=sys.stderr)
        return 2
    res: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs, {platform.release()}, Python "
        f"{platform.python_version()}",
        "loadavg_start": loadavg(),
        "rounds": a.rounds,
        "sched_autogroup": autogroup(),
    }
    real_python3()
    n = 10_000_000
    per_s = n / loop_seconds(n, int(SLOT[1].cpus))[1]  # iterations per CPU second
    with shoal_cluster(1, 1) as (_, env):
        os.environ["SHOAL_HOME"] = env["SHOAL_HOME"]  # the cluster's CA and inventory
        settings = Settings.load()
        res["cpusets"] = check_cpusets(settings)
        res["isolation"] = asyncio.run(isolation(a.rounds, int(per_s * ISOLATION_S), settings))
        res["overhead"] = overhead(a.rounds, int(per_s * OVERHEAD_S), settings)
    res["loadavg_end"] = loadavg()
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_slots.json").write_text(json.dumps(res, indent=2) + "\n")
    (OUT / "bench_slots.md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
