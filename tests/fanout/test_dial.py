"""Failure that says why, at once: a refused connection, a name that does not
resolve and a certificate problem are reported with a one-line reason without
waiting for the connect timeout (only silence waits for it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from agentproc import Agents, free_port, shoal

from shoal.core import tls

# Far longer than any test may take: a node that waited for it would hang the test.
PATIENT = ["--connect-timeout", "600"]


def _nodes(cp: subprocess.CompletedProcess[str]) -> dict[str, dict[str, str]]:
    return json.loads(cp.stdout)["nodes"]  # type: ignore[no-any-return]


def test_refused_connections_are_reported_at_once(agents: Agents) -> None:
    agents.start("n1")
    dead = {f"d{i}": f"127.0.0.1:{free_port()}" for i in range(1, 17)}
    inv = agents.inventory(dead)
    cp = shoal("ping", "--inventory", str(inv), *PATIENT, "-w", "n1,d[1-16]", "--json")
    assert cp.returncode == 4, cp.stderr
    nodes = _nodes(cp)
    assert nodes["n1"]["state"] == "PASS"
    for name, address in dead.items():
        assert nodes[name]["state"] == "UNREACHABLE"
        assert (
            nodes[name]["reason"]
            == f"unreachable: connection refused by {address} (no agent there)"
        )


def test_certificate_problems_are_refused_with_the_problem_named(
    agents: Agents, tmp_path: Path
) -> None:
    agents.start("n1")
    inv = agents.inventory()
    # the inventory puts "n2" at n1's address: n1's certificate is not n2's
    mixed = tmp_path / "mixed.toml"
    mixed.write_text(inv.read_text().replace("n1 =", "n2 ="))
    cp = shoal("ping", "--inventory", str(mixed), *PATIENT, "-w", "n2", "--json")
    assert cp.returncode == 4
    assert _nodes(cp)["n2"] == {
        **_nodes(cp)["n2"],
        "state": "REFUSED",
        "reason": "refused: TLS: the node's certificate is not for n2",
    }
    # a client of another cluster: the agent's certificate is not from its CA
    other = tmp_path / "other-tls"
    tls.init_ca(other)
    tls.issue(other, "client", role=tls.OPERATOR)
    env = {
        **os.environ,
        "SHOAL_CA_CERT": str(other / "ca.crt"),
        "SHOAL_CERT": str(other / "client.crt"),
        "SHOAL_KEY": str(other / "client.key"),
    }
    cp = shoal("ping", "--inventory", str(inv), *PATIENT, "-w", "n1", "--json", env=env)
    assert cp.returncode == 4
    n1 = _nodes(cp)["n1"]
    assert (n1["state"], n1["reason"]) == (
        "REFUSED",
        "refused: TLS: the node's certificate is not signed by our CA",
    )


@pytest.fixture
def loopback_resolver() -> Iterator[list[str]]:
    """A network namespace whose resolv.conf names a resolver on its own
    loopback where nothing answers: a name lookup fails at once and no query
    leaves the machine. Yields the command prefix that runs in it."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 for a network namespace")
    name = f"shoal-dns-{uuid.uuid4().hex[:6]}"
    etc = Path("/etc/netns") / name
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        etc.mkdir(parents=True)
        (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield ["ip", "netns", "exec", name]
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
        shutil.rmtree(etc, ignore_errors=True)


def test_a_name_that_does_not_resolve_is_reported_at_once(
    loopback_resolver: list[str], tmp_path: Path, shoal_home: Path
) -> None:
    inv = tmp_path / "inventory.toml"
    inv.write_text('[nodes]\n"ghost[1-8]" = {}\n')  # addresses default to the names
    argv = [*loopback_resolver, sys.executable, "-m", "shoal.cli.main", "ping", "--insecure"]
    argv += ["--inventory", str(inv), *PATIENT, "-w", "ghost[1-8]", "--json"]
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert cp.returncode == 4, cp.stderr
    for i in range(1, 9):
        got = _nodes(cp)[f"ghost{i}"]
        assert (got["state"], got["reason"]) == (
            "UNREACHABLE",
            f"unreachable: name does not resolve: ghost{i}",
        )


def test_streaming_mode_says_each_failure_with_its_reason(agents: Agents) -> None:
    """Not only the summary: each failed node's reason on stderr as it comes."""
    agents.start("n1")
    agents.start("n2")
    dead = f"127.0.0.1:{free_port()}"
    inv = agents.inventory({"d1": dead})
    cp = shoal("run", "--inventory", str(inv), "-w", "n[1-2],d1", "--cwd", "/nonexistent", "--",
               "true")  # fmt: skip
    assert cp.returncode == 4
    lines = sorted(cp.stderr.splitlines())
    said = f"d1: UNREACHABLE: unreachable: connection refused by {dead} (no agent there)"
    assert lines[0] == said
    assert lines[1].startswith("n1: FAILED: ") and "/nonexistent" in lines[1]
    assert lines[2].startswith("n2: FAILED: ") and "/nonexistent" in lines[2]
    assert cp.stdout.splitlines()[-2:] == ["FAILED: n[1-2], SUM: 2", "UNREACHABLE: d1, SUM: 1"]
    cp = shoal("ping", "--inventory", str(inv), "-w", "n1,d1")
    assert cp.stderr.splitlines() == [said]
