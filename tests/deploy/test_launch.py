"""The one agent-launch builder: flags or a spec file, a controller, a node's
own namespaces; the ready line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from shoal.deploy import AgentNode, Isolation, agent_argv, agent_env, ready_port
from shoal.errors import ConfigError


def test_one_node_by_flags_with_a_controller(tmp_path: Path) -> None:
    argv = agent_argv([AgentNode("n1", tls_dir=tmp_path)], controller="https://c:1", heartbeat=0.5)
    assert argv[:4] == [sys.executable, "-m", "shoal.cli.main", "agent"]
    assert argv[4:] == [
        "--name", "n1", "--listen", "127.0.0.1:0", "--tls-dir", str(tmp_path),
        "--controller", "https://c:1", "--heartbeat", "0.5",
    ]  # fmt: skip
    insecure = agent_argv([AgentNode("n2", port=7, tls_dir=tmp_path, insecure=True)])
    assert insecure[4:] == ["--name", "n2", "--listen", "127.0.0.1:7", "--insecure"]


def test_several_nodes_share_a_process_through_a_spec_file(tmp_path: Path) -> None:
    nodes = [AgentNode(f"m{i}", port=0, tls_dir=tmp_path) for i in (1, 2)]
    with pytest.raises(ConfigError):
        agent_argv(nodes)
    spec = tmp_path / "spec.json"
    assert agent_argv(nodes, spec_file=spec)[4:] == ["--spec-file", str(spec)]
    assert [e["name"] for e in json.loads(spec.read_text())] == ["m1", "m2"]


def test_ready_port_reads_only_ready_lines() -> None:
    assert ready_port("ready n1 4711\n") == ("n1", 4711)
    assert ready_port("ready n1 4711", ["n2"]) is None
    assert ready_port("WARNING: INSECURE") is None


def test_agent_env_runs_this_shoal() -> None:
    import shoal

    env = agent_env({"PATH": "/bin"}, SHOAL_HOME="/h")
    assert env["SHOAL_HOME"] == "/h" and env["PATH"] == "/bin"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(Path(shoal.__file__).parents[1])


@pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need root")
def test_isolation_gives_a_hostname_and_a_private_tmp(tmp_path: Path) -> None:
    name = f"shoal-iso-{uuid.uuid4().hex[:8]}"
    argv = Isolation(hostname=name, tmp=tmp_path / "tmp").wrap(
        ["sh", "-c", f"hostname && touch /tmp/{name}"]
    )
    assert subprocess.run(argv, capture_output=True, text=True).stdout == f"{name}\n"
    assert (tmp_path / "tmp" / name).exists() and not Path(f"/tmp/{name}").exists()
