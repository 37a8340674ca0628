"""The tree with real agents: dead and unknown nodes, a relay killed before and
during a run, and a command printing a gigabyte with bounded memory."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
from agentproc import Agents, free_port, marked, shoal, wait_for


def _json(cp: subprocess.CompletedProcess[str]) -> dict:  # type: ignore[type-arg]
    return json.loads(cp.stdout)  # type: ignore[no-any-return]


def test_dead_agents_are_unreachable_rest_completes(agents: Agents) -> None:
    for i in (1, 2, 3):
        agents.start(f"n{i}")
    inv = agents.inventory({"n4": f"127.0.0.1:{free_port()}", "n5": f"127.0.0.1:{free_port()}"})
    cp = shoal(
        "run",
        "--inventory",
        str(inv),
        "--connect-timeout",
        "2",
        "-W",
        "1",
        "-w",
        "n[1-5]",
        "--json",
        "--",
        "echo ok",
    )
    doc = _json(cp)
    assert cp.returncode == 4
    for n in ("n1", "n2", "n3"):
        assert doc["nodes"][n]["state"] == "PASS" and doc["nodes"][n]["stdout"] == "ok\n"
    for n in ("n4", "n5"):
        assert doc["nodes"][n]["state"] == "UNREACHABLE" and doc["nodes"][n]["reason"]
    assert doc["summary"] == {
        "PASS": {"nodes": "n[1-3]", "count": 3},
        "UNREACHABLE": {"nodes": "n[4-5]", "count": 2},
    }


def test_dead_inner_node_its_subtree_still_answers(agents: Agents) -> None:
    for i in range(1, 8):
        agents.start(f"n{i}")
    inv = agents.inventory()
    # -W 2 over n[1-7]: n1 -> (n2 -> n3), (n4); n5 -> n6, n7. n2 is an inner relay.
    agents.started[1].kill()
    cp = shoal(
        "run",
        "--inventory",
        str(inv),
        "--connect-timeout",
        "2",
        "-W",
        "2",
        "-w",
        "n[1-7]",
        "--",
        "echo hi",
    )
    assert cp.returncode == 4
    assert cp.stdout.splitlines()[-2:] == ["PASS: n[1,3-7], SUM: 6", "UNREACHABLE: n2, SUM: 1"]
    assert "n3: hi" in cp.stdout.splitlines()


@contextlib.contextmanager
def gated_run(
    agents: Agents, tmp_path: Path, *flags: str
) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """`shoal run -W 2 -w n[1-7]` on seven agents, each node's command waiting for
    the file `go` and then printing `marker`: yields (client, marker, go) once all
    seven commands run, and kills the client on the way out if it still does."""
    for i in range(1, 8):
        agents.start(f"n{i}")
    inv = agents.inventory()
    marker = f"shoal-test-{uuid.uuid4().hex}"
    go = tmp_path / "go"
    cmd = f"while [ ! -e {go} ]; do sleep 0.05; done; echo {marker}"
    argv = [sys.executable, "-m", "shoal.cli.main", "run", "--inventory", str(inv)]
    client = subprocess.Popen(
        [*argv, "-W", "2", "-w", "n[1-7]", *flags, "--", cmd],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: len(marked(marker)) >= 7, "all seven commands running")
        yield client, marker, go
    finally:
        if client.poll() is None:
            client.kill()


def test_relay_killed_mid_run_its_child_is_adopted_not_rerun(
    agents: Agents, tmp_path: Path
) -> None:
    with gated_run(agents, tmp_path, "--json") as (client, marker, go):
        agents.started[1].kill()  # n2 relays to n3
        # n1 takes n3 over: n3's command goes on, its result comes through n1.
        # (n2's own command outlives its SIGKILLed agent, as on a host whose
        # agent crashed; `go` ends it.)
        n3 = agents.started[2]
        wait_for(lambda: "n1 takes it over" in n3.log_text(), "n1 adopting n3")
        go.touch()
        out, _ = client.communicate(timeout=60)
    doc = json.loads(out)
    assert set(doc["nodes"]) == {f"n{i}" for i in range(1, 8)}
    assert doc["nodes"]["n2"]["state"] == "UNREACHABLE"
    assert "broke" in doc["nodes"]["n2"]["reason"]
    for n in ("n1", "n3", "n4", "n5", "n6", "n7"):
        assert doc["nodes"][n]["state"] == "PASS", (n, doc["nodes"][n])
        assert doc["nodes"][n]["stdout"] == f"{marker}\n"
    assert n3.log_text().count("exec for client") == 2  # started once, taken over once


def _peak_rss(procs: list[psutil.Process], stop: threading.Event, peak: dict[int, int]) -> None:
    while not stop.is_set():
        for p in procs:
            try:
                peak[p.pid] = max(peak.get(p.pid, 0), p.memory_info().rss)
            except psutil.Error:
                pass
        stop.wait(0.05)


def test_gigabyte_of_output_streams_with_bounded_memory(agents: Agents) -> None:
    a1, a2 = agents.start("n1"), agents.start("n2")
    inv = agents.inventory()
    size = 500_000_000  # per node; n2 goes through the relay n1: 1 GB in all
    client = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shoal.cli.main",
            "run",
            "--inventory",
            str(inv),
            "-W",
            "1",
            "-w",
            "n[1-2]",
            "--",
            f"head -c {size} /dev/zero",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    procs = [psutil.Process(client.pid), psutil.Process(a1.proc.pid), psutil.Process(a2.proc.pid)]
    stop, peak = threading.Event(), {}  # type: ignore[var-annotated]
    watcher = threading.Thread(target=_peak_rss, args=(procs, stop, peak))
    watcher.start()
    received = 0
    tail = b""
    try:
        assert client.stdout is not None
        while chunk := client.stdout.read(1 << 20):
            received += len(chunk)
            tail = (tail + chunk)[-200:]
        assert client.wait(timeout=600) == 0
    finally:
        stop.set()
        watcher.join()
        if client.poll() is None:
            client.kill()
    # every byte arrived (as 64 KiB "lines" of NULs prefixed with the node name)
    assert received > 2 * size
    assert tail.endswith(b"PASS: n[1-2], SUM: 2\n")
    for pid, rss in peak.items():
        assert rss < 250_000_000, f"pid {pid} peaked at {rss} bytes"


def test_leaf_killed_mid_run_is_unreachable_once(agents: Agents, tmp_path: Path) -> None:
    """A leaf does not announce that it took the request (nothing under it could
    run twice): its broken stream is still one UNREACHABLE result, never a re-run."""
    with gated_run(agents, tmp_path) as (client, marker, go):
        agents.started[3].kill()  # n4: a leaf under n1, silent so far
        go.touch()
        out, _ = client.communicate(timeout=60)
    lines = out.splitlines()
    assert lines[-2:] == ["PASS: n[1-3,5-7], SUM: 6", "UNREACHABLE: n4, SUM: 1"]
    assert sum(line.startswith("n4:") for line in lines) == 0  # n4's marker never came back
    assert sorted(line.split(":")[0] for line in lines if line.endswith(marker)) == [
        "n1", "n2", "n3", "n5", "n6", "n7"
    ]  # fmt: skip
