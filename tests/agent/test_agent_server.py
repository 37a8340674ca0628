"""The agent process: mutual TLS refusals are logged, --insecure announces
itself, SIGTERM leaves no orphan, ping and facts answer."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import grpc
from agentproc import Agents, marked, shoal, wait_for

from shoal.core import tls
from shoal.core.wire import pb, rpc
from shoal.deploy import AgentNode, agent_argv, ready_port


def _handshake_failures(log: str) -> int:
    return log.count("Handshake failed")


def test_client_from_another_ca_is_refused_and_logged(agents: Agents, tmp_path: Path) -> None:
    a = agents.start("n1")
    inv = agents.inventory()
    other = tmp_path / "other-tls"
    tls.init_ca(other)
    tls.issue(other, "client", role=tls.OPERATOR)

    def ping(ca: Path) -> subprocess.CompletedProcess[str]:
        env = {
            "SHOAL_HOME": str(tmp_path / "elsewhere"),
            "SHOAL_CA_CERT": str(ca),
            "SHOAL_CERT": str(other / "client.crt"),
            "SHOAL_KEY": str(other / "client.key"),
            "PATH": "/usr/bin:/bin",
        }
        return shoal("ping", "--inventory", str(inv), "--connect-timeout", "3", "-w", "n1", env=env)

    # An intruder who knows our public ca.crt but holds a foreign certificate:
    # the agent refuses it and says so in its log.
    cp = ping(agents.home / "tls" / "ca.crt")
    assert cp.returncode == 4, cp.stderr
    assert cp.stdout.splitlines()[-1] == "REFUSED: n1, SUM: 1"
    wait_for(lambda: _handshake_failures(a.log_text()) > 0, "the refusal in the agent's log")
    assert "certificate" in a.log_text().lower()
    # A client of another cluster altogether does not trust the agent either.
    cp = ping(other / "ca.crt")
    assert cp.returncode == 4
    assert cp.stdout.splitlines()[-1] == "REFUSED: n1, SUM: 1"


async def _call_without_client_cert(a_port: int, ca: bytes) -> grpc.StatusCode:
    creds = grpc.ssl_channel_credentials(root_certificates=ca)  # no client certificate
    async with grpc.aio.secure_channel(
        f"127.0.0.1:{a_port}", creds, options=[("grpc.ssl_target_name_override", "n1")]
    ) as ch:
        req = pb.TaskRequest(tree=pb.Subtree(name="n1"), ping=pb.PingTask())
        try:
            async for _ in rpc.AgentStub(ch).Run(req, timeout=3):
                pass
        except grpc.aio.AioRpcError as e:
            return e.code()
    return grpc.StatusCode.OK


def test_client_without_certificate_is_refused_and_logged(agents: Agents) -> None:
    a = agents.start("n1")
    ca = (agents.home / "tls" / "ca.crt").read_bytes()
    code = asyncio.run(_call_without_client_cert(a.port, ca))
    assert code != grpc.StatusCode.OK
    wait_for(lambda: _handshake_failures(a.log_text()) > 0, "the refusal in the agent's log")


def test_plain_text_client_is_refused(agents: Agents) -> None:
    a = agents.start("n1")
    inv = agents.inventory()
    cp = shoal(
        "run",
        "--inventory",
        str(inv),
        "--insecure",
        "--connect-timeout",
        "2",
        "-w",
        "n1",
        "--",
        "echo should-not-run",
    )
    assert cp.returncode == 4
    assert "should-not-run" not in cp.stdout
    wait_for(lambda: _handshake_failures(a.log_text()) > 0, "the refusal in the agent's log")


def test_insecure_announces_itself(agents: Agents) -> None:
    a = agents.start("n1", insecure=True)
    assert "WARNING" in a.log_text() and "INSECURE" in a.log_text()
    inv = agents.inventory()
    cp = shoal("run", "--inventory", str(inv), "--insecure", "-w", "n1", "--", "echo plain")
    assert cp.returncode == 0
    assert cp.stdout.splitlines() == ["n1: plain", "PASS: n1, SUM: 1"]


def test_sigterm_kills_running_commands_and_exits_0(agents: Agents) -> None:
    a = agents.start("n1")
    inv = agents.inventory()
    marker = f"shoal-test-{uuid.uuid4().hex}"
    client = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shoal.cli.main",
            "run",
            "--inventory",
            str(inv),
            "-w",
            "n1",
            "--",
            f"sh -c 'sleep 600; echo {marker}' & sleep 600; echo {marker}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: marked(marker), "the command running")
        a.proc.send_signal(signal.SIGTERM)
        assert a.proc.wait(timeout=60) == 0
        assert marked(marker) == []
        out, _ = client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
    assert client.returncode != 0
    assert out.splitlines()[-1].endswith("n1, SUM: 1")
    assert "PASS" not in out


def test_ping_and_facts(agents: Agents) -> None:
    agents.start("n1")
    agents.start("n2")
    inv = agents.inventory()
    cp = shoal("ping", "--inventory", str(inv), "-w", "n[1-2]", "-l")
    assert cp.returncode == 0
    lines = cp.stdout.splitlines()
    assert lines[0].startswith("n1 [PASS] ") and lines[0].endswith(" ms")
    assert lines[-1] == "PASS: n[1-2], SUM: 2"
    cp = shoal("facts", "--inventory", str(inv), "-w", "n[1-2]", "--json")
    assert cp.returncode == 0
    doc = json.loads(cp.stdout)
    f = doc["nodes"]["n2"]["facts"]
    assert f["hostname"] and f["cpus_logical"] >= 1 and int(f["memory_total"]) > 0
    assert any(i["name"] == "lo" and "127.0.0.1" in i["addresses"] for i in f["interfaces"])
    assert f["kernel"] and f["os"] and int(f["boot_time"]) > 0
    cp = shoal("facts", "--inventory", str(inv), "-w", "n[1-2]")
    assert cp.returncode == 0 and "hostname" in cp.stdout
    assert cp.stdout.splitlines()[-1] == "PASS: n[1-2], SUM: 2"


def test_spec_file_hosts_many_agents_in_one_process(agents: Agents, tmp_path: Path) -> None:
    tls_dir = agents.home / "tls"
    tls.init_ca(tls_dir)
    tls.issue(tls_dir, "client", role=tls.OPERATOR)
    for n in ("m1", "m2", "m3"):
        tls.issue(tls_dir, n)
    nodes = [AgentNode(n, tls_dir=tls_dir) for n in ("m1", "m2", "m3")]
    argv = agent_argv(nodes, spec_file=tmp_path / "spec.json")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        ready = [ready_port(proc.stdout.readline()) for _ in range(3)]
        assert [r[0] for r in ready if r] == ["m1", "m2", "m3"]
        ports = dict(r for r in ready if r)
        assert len(set(ports.values())) == 3
        inv = agents.home / "inventory.toml"
        inv.write_text("[nodes]\n" + "".join(f'{n} = "127.0.0.1:{p}"\n' for n, p in ports.items()))
        cp = shoal("run", "--inventory", str(inv), "-w", "m[1-3]", "-W", "1", "--", "echo x")
        assert cp.returncode == 0
        assert cp.stdout.splitlines()[-1] == "PASS: m[1-3], SUM: 3"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_spec_file_with_an_unknown_key_is_one_line(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text('[{"name": "m1", "port": 0, "insecure": true, "fass_spares": 1}]')
    r = shoal("agent", "--spec-file", str(spec))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "unknown key(s) fass_spares" in r.stderr and "faas_spares" in r.stderr
