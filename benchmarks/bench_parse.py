"""`shoal bench parse` against `grep -n -e START -e END` (issue 15, Performance),
side by side in one run.

    .venv/bin/python benchmarks/bench_parse.py [--size-gib 1.0] [--rounds 3]

Generates benchy-style logs (thread_id lines with timestamps, progress noise,
the p1/p2/p4 start and end lines of filecoin's benchy) into benchmarks/work/
(kept between runs when the size matches), then times, in interleaved
rounds after one warm-up of each (so both read from the page cache):

- grep: `grep -n -E -e START1 -e END1 ... FILES > out` with every start and
  end pattern of the campaign, output to a file (grep treats /dev/null as -q);
- shoal: `shoal bench parse 'work/*.log' --phases campaign.toml --group ...
  --no-plots`, the whole command: start-up, extraction, runs.json, report.

Reported: median wall time of each, the ratio shoal / grep (target: at most
2), and both tools' line counts as a check that they saw the same lines.
Writes benchmarks/results/bench_parse.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "bench_parse"
OUT = HERE / "results"
SHOAL = [sys.executable, "-m", "shoal.cli.main"]
TARGET = 2.0
FILES = 24

PHASES = [  # name, start, end: as an operator greps benchy's logs
    ("p1", "seal_pre_commit_phase1: start", "seal_pre_commit_phase1: finish"),
    ("p2", "seal_pre_commit_phase2_all_zero: start", r"\[benchy::force\] p34 disabled"),
    ("p4", r"got groth params \(.*\) while sealing", "seal_commit_phase2:finish"),
]
CAMPAIGN = '[parse]\ntimestamp = "%Y-%m-%d %H:%M:%S"\n' + "".join(
    f"[[phases]]\nname = \"{n}\"\nstart = '{s}'\nend = '{e}'\n" for n, s, e in PHASES
)
GROUP = r"benchy-(?P<layout>\d+cpu)-(?P<rep>\d+)"
TS = b"2020-07-19 02:35:20"
NOISE = [
    b"thread_id: ThreadId(%d) " + TS + b" INFO [storage_proofs_porep::stacked::vanilla::"
    b"create_label] generating layer %d: node %d of 1073741824",
    b"thread_id: ThreadId(%d) " + TS + b" DEBUG [storage_proofs_core::merkle] building tree_r_last"
    b" %d/%d",
    b"thread_id: ThreadId(%d) " + TS + b" INFO [filecoin_proofs::api::seal] seal_pre_commit_phase"
    b"2: tree %d of %d done",
]


def _line(ts: str, text: str, mod: str = "filecoin_proofs::api::seal_pledge") -> bytes:
    return f"thread_id: ThreadId(1) {ts} INFO [{mod}] {text}\n".encode()


def generate(size: int) -> list[Path]:
    """FILES logs of size/FILES bytes each, phases at a quarter, half and the end."""
    WORK.mkdir(parents=True, exist_ok=True)
    stamp = WORK / f"generated-{size}"
    files = [WORK / f"benchy-{23 * (1 + i % 4)}cpu-{i // 4 + 1}.log" for i in range(FILES)]
    if stamp.exists() and all(f.exists() for f in files):
        return files
    for old in WORK.glob("generated-*"):
        old.unlink()
    chunk = b"".join(NOISE[i % 3] % (i % 64, i % 11, i) + b"\n" for i in range(4096))
    per = size // FILES
    base = dt.datetime(2020, 7, 19, 2, 0, 0)
    for k, path in enumerate(files):
        t = base + dt.timedelta(minutes=k)
        marks = {
            0: [_line(f"{t:%Y-%m-%d %H:%M:%S}", PHASES[0][1])],
            per // 4: [_line(f"{t + dt.timedelta(hours=1):%Y-%m-%d %H:%M:%S}", PHASES[0][2]),
                       _line(f"{t + dt.timedelta(hours=1):%Y-%m-%d %H:%M:%S}",
                             "seal_pre_commit_phase2_all_zero: start")],
            per // 2: [_line(f"{t + dt.timedelta(hours=3):%Y-%m-%d %H:%M:%S}", "p34 disabled",
                             "benchy::force"),
                       _line(f"{t + dt.timedelta(hours=3):%Y-%m-%d %H:%M:%S}",
                             "got groth params (32GiB) while sealing")],
        }  # fmt: skip
        written = 0
        with path.open("wb") as f:
            while written < per:
                for at in [m for m in marks if written >= m]:
                    for ln in marks.pop(at):
                        f.write(ln)
                t_chunk = t + dt.timedelta(seconds=written // len(chunk))
                f.write(chunk.replace(TS, f"{t_chunk:%Y-%m-%d %H:%M:%S}".encode()))
                written += len(chunk)
            end = t + dt.timedelta(hours=5, seconds=k)
            f.write(_line(f"{end:%Y-%m-%d %H:%M:%S}", PHASES[2][2]))
    stamp.touch()
    return files


def grep_cmd(files: list[Path]) -> list[str]:
    args = ["grep", "-n", "-E"]
    for _, s, e in PHASES:
        args += ["-e", s, "-e", e]
    return args + [str(f) for f in files]


def timed(argv: list[str], out: Path, env: dict[str, str]) -> float:
    with out.open("wb") as f:
        t0 = time.perf_counter()
        r = subprocess.run(argv, stdout=f, stderr=subprocess.PIPE, env=env)
        wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed ({r.returncode}): {r.stderr.decode()[-500:]}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-gib", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    size = int(a.size_gib * (1 << 30))
    files = generate(size)
    total = sum(f.stat().st_size for f in files)
    campaign = WORK / "campaign.toml"
    campaign.write_text(CAMPAIGN)
    env = {**os.environ, "LC_ALL": "C"}  # grep's fastest locale
    grep = grep_cmd(files)
    shoal = [*SHOAL, "bench", "parse", str(WORK / "*.log"), "--phases", str(campaign),
             "--group", GROUP, "-o", str(WORK / "results"), "--no-plots"]  # fmt: skip
    g_out, s_out = WORK / "grep.out", WORK / "shoal.out"
    load0 = os.getloadavg()
    timed(grep, g_out, env)  # warm-up: the page cache
    timed(shoal, s_out, env)
    g_times, s_times = [], []
    for i in range(a.rounds):
        order = [("grep", grep, g_out), ("shoal", shoal, s_out)]
        for name, argv, out in order if i % 2 == 0 else order[::-1]:
            (g_times if name == "grep" else s_times).append(timed(argv, out, env))
    runs = json.loads((WORK / "results" / "runs.json").read_text())["runs"]
    grep_lines = len(g_out.read_text().splitlines())
    complete = sum(r["status"] == "complete" for r in runs)
    g, s = statistics.median(g_times), statistics.median(s_times)
    ratio = s / g
    res = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {os.cpu_count()} CPUs, {platform.python_version()}",
        "load_average_start": load0,
        "load_average_end": os.getloadavg(),
        "files": len(files),
        "bytes": total,
        "patterns": 2 * len(PHASES),
        "rounds": a.rounds,
        "grep_s": g_times,
        "shoal_s": s_times,
        "grep_median_s": g,
        "shoal_median_s": s,
        "ratio": ratio,
        "target_ratio": TARGET,
        "met": ratio <= TARGET,
        "grep_lines": grep_lines,
        "shoal_complete_runs": complete,
        "shoal_runs": len(runs),
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_parse.json").write_text(json.dumps(res, indent=2) + "\n")
    verdict = "met" if res["met"] else "**missed**"
    g_runs = ", ".join(f"{x:.2f}" for x in g_times)
    s_runs = ", ".join(f"{x:.2f}" for x in s_times)
    md = f"""# `shoal bench parse` against grep

{res["date"]}, {res["machine"]}, load average {load0[0]:.1f} at the start,
{res["load_average_end"][0]:.1f} at the end. {len(files)} benchy-style logs of
{total / 2**30:.2f} GiB in all, {res["patterns"]} patterns (start and end of
p1, p2, p4), from the page cache, median of {a.rounds} interleaved rounds.

| | median wall | runs |
|---|---:|---|
| `grep -n -E -e START -e END ...` (LC_ALL=C) | {g:.2f} s | {g_runs} |
| `shoal bench parse ... --no-plots` | {s:.2f} s | {s_runs} |
| ratio shoal / grep | **{ratio:.2f}x** | target at most {TARGET:.0f}x: {verdict} |

grep printed {grep_lines} lines; shoal paired them into {len(runs)} runs,
{complete} complete.
"""
    (OUT / "bench_parse.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
