import subprocess
import sys
from pathlib import Path

from agentproc import Agents


def shoal(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shoal.cli.main", *args], capture_output=True, text=True, timeout=60
    )


def test_version() -> None:
    r = shoal("--version")
    assert r.returncode == 0 and r.stdout.startswith("shoal ")


def test_ca_init_twice_is_one_line_error(shoal_home: Path) -> None:
    assert shoal("ca", "init").returncode == 0
    assert (shoal_home / "tls" / "client.crt").exists()
    r = shoal("ca", "init")
    assert r.returncode == 5
    assert r.stderr.strip().count("\n") == 0 and "already exists" in r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_command_is_usage_error() -> None:
    r = shoal("nope")
    assert r.returncode == 2


def test_agent_on_a_busy_port_is_one_line(shoal_home: Path) -> None:
    import socket

    assert shoal("ca", "init").returncode == 0
    assert shoal("ca", "issue", "n1").returncode == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = shoal("agent", "--name", "n1", "--listen", f"127.0.0.1:{port}")
    assert r.returncode == 5
    assert "cannot listen on" in r.stderr and "Traceback" not in r.stderr


def test_output_into_a_closed_pipe_is_quiet(agents: Agents) -> None:
    """`shoal run … | head -2`: no BrokenPipeError traceback when the reader goes away."""
    agents.start("n1")
    agents.inventory()
    r = subprocess.run(
        [
            "bash",
            "-c",
            f"{sys.executable} -m shoal.cli.main run -w n1 -- 'seq 1 300000' | head -2;"
            " exit ${PIPESTATUS[0]}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.stdout == "n1: 1\nn1: 2\n"
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr
    assert r.returncode == 141  # 128 + SIGPIPE, as cat; not 1, which means FAILED


def test_ctrl_c_at_any_moment_is_one_line_and_130(agents: Agents) -> None:
    """While the CLI imports typer and rich, and once the command runs."""
    import signal
    import time

    agents.start("n1")
    inv = agents.inventory()
    for delay in (0.1, 0.15, 0.2, 0.3, 0.5, 1.5):
        p = subprocess.Popen(
            [sys.executable, "-m", "shoal.cli.main", "run", "--inventory", str(inv), "-w", "n1",
             "--", "sleep 30"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
        assert p.returncode == 130, (delay, err)
        assert "Traceback" not in err and err.count("\n") == 1, (delay, err)
        assert err.startswith("shoal: error: interrupted"), (delay, err)


def test_ca_issue_never_overwrites_and_expands_node_sets(shoal_home: Path) -> None:
    assert shoal("ca", "init").returncode == 0
    r = shoal("ca", "issue", "node[1-3]")
    assert r.returncode == 0, r.stderr
    tls_dir = shoal_home / "tls"
    assert sorted(p.name for p in tls_dir.glob("node*.crt")) == [
        "node1.crt",
        "node2.crt",
        "node3.crt",
    ]
    assert not (tls_dir / "node[1-3].crt").exists()
    key = (tls_dir / "node2.key").read_bytes()
    r = shoal("ca", "issue", "node[2-4]")
    assert r.returncode == 5 and "node2.crt already exists: pass --force" in r.stderr
    assert (tls_dir / "node2.key").read_bytes() == key and not (tls_dir / "node4.crt").exists()
    assert shoal("ca", "issue", "node2", "--force").returncode == 0
    assert (tls_dir / "node2.key").read_bytes() != key
