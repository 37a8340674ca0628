"""Work runs only under an operator's grant: a node's certificate can relay but
not command, a relay cannot change or widen what it forwards, and a replayed
grant never runs twice. Real agent processes over mutual TLS."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import grpc
from agentproc import Agent, Agents, shoal

from shoal.core import tls
from shoal.core.grant import Signer, body_of
from shoal.core.wire import pb, rpc


def _as(agents: Agents, name: str) -> dict[str, str]:
    d = agents.home / "tls"
    return {**os.environ, "SHOAL_CERT": str(d / f"{name}.crt"), "SHOAL_KEY": str(d / f"{name}.key")}


def test_a_node_certificate_cannot_start_work(agents: Agents, tmp_path: Path) -> None:
    agents.start("n1")
    agents.start("n2")
    inv = agents.inventory()
    pwned = tmp_path / "pwned"
    # n2's own certificate (role node) used as a client, as a compromised node would.
    cp = shoal("run", "--inventory", str(inv), "-w", "n1", "--", f"id -u > {pwned}",
               env=_as(agents, "n2"))  # fmt: skip
    assert cp.returncode == 4
    assert cp.stdout.splitlines()[-1] == "REFUSED: n1, SUM: 1"
    assert not pwned.exists()
    cp = shoal("run", "--inventory", str(inv), "-w", "n1", "--json", "--", "true",
               env=_as(agents, "n2"))  # fmt: skip
    assert "n2 is a node certificate: it may not start work" in cp.stdout
    assert "refused a request from n2" in agents.started[0].log_text()
    # The operator's certificate may.
    assert shoal("run", "--inventory", str(inv), "-w", "n1", "--", "true").returncode == 0


def _ident(agents: Agents, name: str) -> tls.Identity:
    return tls.Identity.in_dir(agents.home / "tls", name)


async def _run(agents: Agents, a: Agent, req: pb.TaskRequest, as_name: str) -> list[pb.TaskEvent]:
    """Send req to agent a directly, presenting as_name's certificate (a relay)."""
    creds = tls.channel_credentials(_ident(agents, as_name))
    async with grpc.aio.secure_channel(
        a.address, creds, options=[("grpc.ssl_target_name_override", a.name)]
    ) as ch:
        return [ev async for ev in rpc.AgentStub(ch).Run(req, timeout=20)]


def _signed(
    agents: Agents, tree: pb.Subtree, command: str, by: str = tls.CLIENT_NAME
) -> pb.TaskRequest:
    req = pb.TaskRequest(tree=tree, task_id=uuid.uuid4().hex, exec=pb.ExecTask(command=command))
    req.signed.CopyFrom(Signer(_ident(agents, by)).sign(tree, body_of(req)))
    return req


def _code(agents: Agents, a: Agent, req: pb.TaskRequest, as_name: str = "n2") -> str:
    try:
        asyncio.run(_run(agents, a, req, as_name))
    except grpc.aio.AioRpcError as e:
        assert e.code() == grpc.StatusCode.PERMISSION_DENIED, e
        return e.details() or ""
    return "ran"


def test_a_relay_can_forward_but_not_forge(agents: Agents, tmp_path: Path) -> None:
    a = agents.start("n1")
    agents.start("n2")
    me = pb.Subtree(name="n1", address=a.address)
    pwned = tmp_path / "pwned"
    # Forwarded as the operator signed it: runs, whoever relays it.
    ok = _signed(agents, me, "echo hi")
    evs = asyncio.run(_run(agents, a, ok, "n2"))
    assert [e.result.state for e in evs if e.HasField("result")] == [pb.STATE_OK]
    # Signed by a node: refused.
    forged = _signed(agents, me, f"touch {pwned}", by="n2")
    assert "n2 is a node certificate" in _code(agents, a, forged)
    # The operator's grant with another command put in: refused.
    changed = _signed(agents, me, "echo hi")
    changed.exec.command = f"touch {pwned}"
    assert "not the one client signed" in _code(agents, a, changed)
    # A grant for another subtree, or no grant at all: refused.
    elsewhere = _signed(agents, pb.Subtree(name="n2", address="127.0.0.1:1"), "true")
    elsewhere.tree.CopyFrom(me)
    assert "did not ask for n1" in _code(agents, a, elsewhere)
    bare = pb.TaskRequest(tree=me, task_id=uuid.uuid4().hex, exec=pb.ExecTask(command="true"))
    assert "no operator's grant" in _code(agents, a, bare)
    # A grant from long ago: stale.
    old = pb.TaskRequest(tree=me, task_id=uuid.uuid4().hex, exec=pb.ExecTask(command="true"))
    signer = Signer(_ident(agents, tls.CLIENT_NAME))
    real_time_ns = time.time_ns
    try:
        time.time_ns = lambda: real_time_ns() - 3600 * 10**9  # type: ignore[assignment]
        old.signed.CopyFrom(signer.sign(me, body_of(old)))
    finally:
        time.time_ns = real_time_ns  # type: ignore[assignment]
    assert "stale" in _code(agents, a, old)
    assert not pwned.exists()


def test_a_replayed_grant_reports_again_but_never_runs_again(
    agents: Agents, tmp_path: Path
) -> None:
    a = agents.start("n1")
    agents.start("n2")
    me = pb.Subtree(name="n1", address=a.address)
    count = tmp_path / "count"
    req = _signed(agents, me, f"echo x >> {count}; echo ran")
    first = asyncio.run(_run(agents, a, req, "n2"))
    again = asyncio.run(_run(agents, a, req, "n2"))
    assert count.read_text() == "x\n"
    for evs in (first, again):
        assert [e.result.state for e in evs if e.HasField("result")] == [pb.STATE_OK]
        assert b"".join(e.output.data for e in evs if e.HasField("output")) == b"ran\n"


def test_commands_get_a_clean_environment(agents: Agents) -> None:
    import json

    secrets = {"AWS_SECRET_ACCESS_KEY": "s3cr3t", "SHOAL_CONTROLLER_STATUSPAGE_API_KEY": "k3y"}
    agents.start("n1", env=secrets)
    inv = agents.inventory()
    cp = shoal("run", "--inventory", str(inv), "-w", "n1", "--json", "--env", "FOO=bar", "--",
               "env")  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    out = json.loads(cp.stdout)["nodes"]["n1"]["stdout"]
    env = dict(line.split("=", 1) for line in out.splitlines())
    assert "s3cr3t" not in out and "k3y" not in out
    given = {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "SHOAL_NODE", "FOO"}
    assert given <= set(env)
    assert set(env) - given <= {"PWD", "SHLVL", "OLDPWD", "_"}  # what /bin/sh adds itself
    assert (env["SHOAL_NODE"], env["FOO"]) == ("n1", "bar")
