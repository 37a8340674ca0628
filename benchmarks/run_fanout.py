"""Fan-out benchmark (issue 2, Performance): shoal against the practice it
replaces, in one run, on this machine.

    .venv/bin/python benchmarks/run_fanout.py [--quick]

Measures, as a user runs them (the installed `shoal` and `clush` commands):
  * side by side at 64 nodes, interleaved round-robin, median of 9 rounds:
    shoal over mutual TLS with 64 agent processes (`shoal run -w node[1-64]
    -- true` and `shoal ping`), `clush -R exec -w node[1-64] -b true` (local
    exec, no network: clush's best case), and `clush -w node[1-64] -b true`
    over ssh to 64 host aliases of a private sshd on loopback (its own port,
    host key and ssh_config; the system's ssh is never touched);
  * a scale curve with --per-process (N = 64, 256, 1,024): wall time, CPU per
    node for client and agents together, and the client's own CPU per node;
  * a width sweep (-W) at 64 and 1,024 nodes;
  * the CLI's start-up time (`shoal --version`).
CPU: the client's from getrusage(RUSAGE_CHILDREN) around each command (it
includes ssh clients that clush reaps); the agents' (or sshd's) from psutil
cpu_times of their processes, own plus reaped children, before and after.
Writes benchmarks/results/run_fanout.json and .md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from shoal.deploy import LocalCluster

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SHOAL = str(BIN / "shoal")
CLUSH = str(BIN / "clush")
OUT = ROOT / "benchmarks" / "results"

SETTLE = 1.0  # seconds between interleaved commands (64 sshd sessions take a while to go)

TARGETS = {
    "vs_clush_ssh_min_speedup": 20.0,
    "vs_clush_exec_max_slowdown": 1.5,
    "cpu_ms_per_node_max": 3.0,
    "cli_start_ms_max": 150.0,
}


@dataclass
class Sample:
    wall_s: float
    client_cpu_s: float
    rc: int


def run_cmd(argv: list[str], env: dict[str, str]) -> Sample:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(argv, env=env, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if r.returncode != 0:
        tail = (r.stdout + r.stderr).decode(errors="replace").strip().splitlines()[-3:]
        print(f"  ! {' '.join(argv[:6])}... exit {r.returncode}: {' | '.join(tail)}")
    return Sample(wall, cpu, r.returncode)


def proc_cpu(pids: list[int]) -> float:
    """CPU seconds of these processes, their own plus their reaped children's."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def measure(
    argv: list[str], env: dict[str, str], n_nodes: int, server_pids: list[int], repeat: int
) -> dict[str, object]:
    """Median wall time over `repeat` runs (after one warm-up), and CPU per node."""
    run_cmd(argv, env)  # warm-up: page cache, first connections
    s0 = proc_cpu(server_pids)
    samples = [run_cmd(argv, env) for _ in range(repeat)]
    return summarize(argv, n_nodes, samples, proc_cpu(server_pids) - s0)


def summarize(
    argv: list[str], n_nodes: int, samples: list[Sample], server_cpu_s: float
) -> dict[str, object]:
    """Median wall time and CPU per node (client and servers) of one command's runs."""
    client = sum(s.client_cpu_s for s in samples)
    per = len(samples) * n_nodes
    return {
        "cmd": " ".join([Path(argv[0]).name, *argv[1:]]),
        "nodes": n_nodes,
        "runs": len(samples),
        "wall_s_median": statistics.median(s.wall_s for s in samples),
        "wall_s_all": [round(s.wall_s, 4) for s in samples],
        "exit_codes": sorted({s.rc for s in samples}),
        "client_cpu_ms_per_node": 1000 * client / per,
        "server_cpu_ms_per_node": 1000 * server_cpu_s / per,
        "cpu_ms_per_node": 1000 * (client + server_cpu_s) / per,
    }


@dataclass
class Cmd:
    argv: list[str]
    env: dict[str, str]
    nodes: int
    server_pids: list[int]


def measure_interleaved(cmds: dict[str, Cmd], repeat: int) -> dict[str, dict[str, object]]:
    """Like measure, but round-robin over the commands (a, b, c, a, b, c, ...):
    a machine whose speed drifts over minutes (a shared VM) then slows every
    command alike instead of whichever block ran during the slow minute."""
    for c in cmds.values():
        run_cmd(c.argv, c.env)  # warm-up
    samples: dict[str, list[Sample]] = {k: [] for k in cmds}
    server = dict.fromkeys(cmds, 0.0)
    for _ in range(repeat):
        for k, c in cmds.items():
            time.sleep(SETTLE)  # the previous command's processes finish exiting
            s0 = proc_cpu(c.server_pids)
            samples[k].append(run_cmd(c.argv, c.env))
            server[k] += proc_cpu(c.server_pids) - s0
    return {k: summarize(c.argv, c.nodes, samples[k], server[k]) for k, c in cmds.items()}


@contextlib.contextmanager
def shoal_cluster(n: int, per_process: int) -> Iterator[tuple[LocalCluster, dict[str, str]]]:
    home = Path(tempfile.mkdtemp(prefix=f"shoal-bench-{n}-"))
    env = {**os.environ, "SHOAL_HOME": str(home)}
    c = LocalCluster(home)
    t0 = time.perf_counter()
    try:
        c.start(n, per_process=per_process)
        took = time.perf_counter() - t0
        print(f"  cluster of {n} up in {took:.1f} s ({len(c.state.procs)} processes)")
        yield c, env
    finally:
        c.down()
        shutil.rmtree(home, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def private_sshd(n: int) -> Iterator[tuple[Path, int]]:
    """An sshd of our own on 127.0.0.1 and an ssh_config with n host aliases."""
    d = Path(tempfile.mkdtemp(prefix="shoal-bench-ssh-"))
    port = free_port()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True
    )
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "id")], check=True)
    shutil.copy(d / "id.pub", d / "authorized_keys")
    (d / "sshd_config").write_text(
        f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d}/host_key
AuthorizedKeysFile {d}/authorized_keys
PidFile {d}/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 1000
MaxSessions 1000
UseDNS no
LogLevel ERROR
"""
    )
    hosts = "\n".join(f"Host node{i}\n  HostName 127.0.0.1\n" for i in range(1, n + 1))
    (d / "ssh_config").write_text(
        f"""{hosts}
Host *
  Port {port}
  User {os.environ.get("USER", "root")}
  IdentityFile {d}/id
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  BatchMode yes
"""
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege-separation dir sshd insists on
    proc = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-f", str(d / "sshd_config"), "-E", str(d / "sshd.log")]
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {(d / 'sshd.log').read_text()}")
            time.sleep(0.05)
        yield d, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        shutil.rmtree(d, ignore_errors=True)


def cli_start(env: dict[str, str], repeat: int) -> dict[str, object]:
    walls = [run_cmd([SHOAL, "--version"], env).wall_s for _ in range(repeat)]
    return {
        "runs": repeat,
        "ms_median": 1000 * statistics.median(walls),
        "ms_min": 1000 * min(walls),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer runs, N up to 256")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--repeat-side", type=int, default=9, help="rounds of the 64-node comparison")
    args = ap.parse_args()
    rep = 2 if args.quick else args.repeat
    rep_side = 2 if args.quick else args.repeat_side
    scale = [(64, 1), (256, 4)] if args.quick else [(64, 1), (256, 4), (1024, 16)]
    widths = [2, 4, 8, 16, 32]
    res: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
            "root": os.geteuid() == 0,
            "loadavg_start": os.getloadavg(),
        },
        "targets": TARGETS,
        "date": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
    }
    base_env = {**os.environ}

    print("CLI start-up")
    res["cli_start"] = cli_start(base_env, 5 if args.quick else 30)

    print("64 nodes side by side (interleaved): shoal run, shoal ping, clush exec, clush ssh")
    with shoal_cluster(64, 1) as (c, env), private_sshd(64) as (d, sshd_pid):
        pids = [p.pid for p in c.state.procs]
        ssh = [CLUSH, "-o", f"-F {d}/ssh_config", "-w", "node[1-64]", "-b", "true"]
        res.update(
            measure_interleaved(
                {
                    "shoal_run_64": Cmd(
                        [SHOAL, "run", "-w", "node[1-64]", "--", "true"], env, 64, pids
                    ),
                    "shoal_ping_64": Cmd([SHOAL, "ping", "-w", "node[1-64]"], env, 64, pids),
                    "clush_exec_64": Cmd(
                        [CLUSH, "-R", "exec", "-w", "node[1-64]", "-b", "true"], base_env, 64, []
                    ),
                    "clush_ssh_64": Cmd(ssh, base_env, 64, [sshd_pid]),
                },
                rep_side,
            )
        )

    print("scale curve and width sweep")
    curve: list[dict[str, object]] = []
    sweep: dict[str, list[dict[str, object]]] = {}
    for n, k in scale:
        with shoal_cluster(n, k) as (c, env):
            pids = [p.pid for p in c.state.procs]
            m = measure([SHOAL, "run", "-w", f"node[1-{n}]", "--", "true"], env, n, pids, rep)
            m["per_process"] = k
            curve.append(m)
            print(f"  N={n}: {m['wall_s_median']:.3f} s, {m['cpu_ms_per_node']:.2f} ms CPU/node")
            if n in (64, 1024) or (args.quick and n == 256):
                argv = [SHOAL, "run", "-W", "{w}", "-w", f"node[1-{n}]", "--", "true"]
                by_w = measure_interleaved(
                    {str(w): Cmd([a.format(w=w) for a in argv], env, n, pids) for w in widths},
                    max(3, rep - 2),
                )
                sweep[str(n)] = []
                for w in widths:
                    s = {**by_w[str(w)], "width": w}
                    sweep[str(n)].append(s)
                    print(f"  N={n} W={w}: {s['wall_s_median']:.3f} s")
    res["scale"] = curve
    res["width_sweep"] = sweep

    res["machine"]["loadavg_end"] = os.getloadavg()
    wall = {k: res[k]["wall_s_median"] for k in ("shoal_run_64", "clush_ssh_64", "clush_exec_64")}
    res["ratios"] = {
        "clush_ssh_over_shoal_run": wall["clush_ssh_64"] / wall["shoal_run_64"],
        "shoal_run_over_clush_exec": wall["shoal_run_64"] / wall["clush_exec_64"],
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "run_fanout.json").write_text(json.dumps(res, indent=2) + "\n")
    (OUT / "run_fanout.md").write_text(markdown(res))
    print((OUT / "run_fanout.md").read_text())
    return 0


def _load(la: list[float]) -> str:
    return "/".join(f"{x:.1f}" for x in la)


def markdown(r: dict[str, Any]) -> str:
    def row(label: str, m: dict[str, Any]) -> str:
        return (
            f"| {label} | {m['wall_s_median'] * 1000:.0f} | {m['cpu_ms_per_node']:.2f} |"
            f" {m['client_cpu_ms_per_node']:.2f} | {m['server_cpu_ms_per_node']:.2f} |"
        )

    ra, t, mc = r["ratios"], r["targets"], r["machine"]
    best = {
        n: min(s, key=lambda x: x["wall_s_median"])["width"] for n, s in r["width_sweep"].items()
    }
    cpu64 = r["shoal_run_64"]["cpu_ms_per_node"]
    ssh_x, exec_x = ra["clush_ssh_over_shoal_run"], ra["shoal_run_over_clush_exec"]
    ok = lambda b: "met" if b else "**missed**"  # noqa: E731
    lines = [
        "# Fan-out benchmark (benchmarks/run_fanout.py)",
        "",
        f"{r['date']}, {mc['cpus']} CPUs, Python {mc['python']}, kernel {mc['kernel']},"
        f" root={mc['root']}. 64 nodes: median wall time of {r['shoal_run_64']['runs']} rounds"
        " after a warm-up, the four commands interleaved in each round; scale curve and"
        f" sweep: median of {r['scale'][0]['runs']} runs, widths interleaved;"
        " CPU = client (getrusage of the command and its children) + servers (agents or sshd,"
        " psutil before/after), per node per run.",
        "",
        f"Load average (1/5/15 min) at start {_load(mc['loadavg_start'])},"
        f" at end {_load(mc['loadavg_end'])}"
        + (
            f": **this machine was busy with other work when the run started** (load above"
            f" its {mc['cpus']} CPUs), so wall times and the CLI start-up are inflated."
            if mc["loadavg_start"][0] > mc["cpus"]
            else ". The machine was quiet at the start; the load at the end is the"
            " benchmark's own (the 1,024-node scale test runs thousands of gRPC threads)."
        ),
        "",
        "## 64 nodes, side by side",
        "",
        "| command | wall ms | CPU ms/node | client CPU ms/node | agents/sshd CPU ms/node |",
        "|---|---:|---:|---:|---:|",
        row("`shoal run -w node[1-64] -- true` (mTLS, 64 agent processes)", r["shoal_run_64"]),
        row("`shoal ping -w node[1-64]`", r["shoal_ping_64"]),
        row("`clush -R exec -w node[1-64] -b true` (local exec)", r["clush_exec_64"]),
        row("`clush -w node[1-64] -b true` over ssh (private sshd, loopback)", r["clush_ssh_64"]),
        "",
        "| target | measured | |",
        "|---|---:|---|",
        f"| shoal at least {t['vs_clush_ssh_min_speedup']:.0f}x faster than clush over ssh"
        f" | {ssh_x:.1f}x | {ok(ssh_x >= t['vs_clush_ssh_min_speedup'])} |",
        f"| shoal at most {t['vs_clush_exec_max_slowdown']}x clush local exec"
        f" | {exec_x:.2f}x | {ok(exec_x <= t['vs_clush_exec_max_slowdown'])} |",
        f"| CPU per node < {t['cpu_ms_per_node_max']:.0f} ms (64 nodes) | {cpu64:.2f} ms |"
        f" {ok(cpu64 < t['cpu_ms_per_node_max'])} |",
        f"| CLI start < {t['cli_start_ms_max']:.0f} ms | {r['cli_start']['ms_median']:.0f} ms |"
        f" {ok(r['cli_start']['ms_median'] < t['cli_start_ms_max'])} |",
        "",
        "## Scale curve (`shoal run -w node[1-N] -- true`, default width)",
        "",
        "| N | agents per process | wall ms | CPU ms/node | client CPU ms/node"
        " | agents CPU ms/node |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for m in r["scale"]:
        lines.append(
            f"| {m['nodes']} | {m['per_process']} | {m['wall_s_median'] * 1000:.0f} |"
            f" {m['cpu_ms_per_node']:.2f} | {m['client_cpu_ms_per_node']:.2f} |"
            f" {m['server_cpu_ms_per_node']:.2f} |"
        )
    lines += ["", "## Width sweep (`-W`, wall ms)", ""]
    ns = list(r["width_sweep"])
    lines += ["| W | " + " | ".join(f"N={n}" for n in ns) + " |", "|---:|" + "---:|" * len(ns)]
    for i, s in enumerate(r["width_sweep"][ns[0]]):
        cells = [f"{r['width_sweep'][n][i]['wall_s_median'] * 1000:.0f}" for n in ns]
        lines.append(f"| {s['width']} | " + " | ".join(cells) + " |")
    lines += ["", "Fastest width: " + ", ".join(f"N={n}: W={w}" for n, w in best.items()) + "."]
    lines.append(
        f"\nCLI start-up: `shoal --version` median {r['cli_start']['ms_median']:.0f} ms"
        f" (min {r['cli_start']['ms_min']:.0f} ms) over {r['cli_start']['runs']} runs.\n"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
