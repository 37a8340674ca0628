"""Netns test hosts: own address, shaped links, private /tmp, cut and removal."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.deploy import AgentNode, NetnsHosts, agent_argv, ready_port

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="netns hosts need root")


@pytest.fixture
def hosts() -> Iterator[NetnsHosts]:
    h = NetnsHosts.create(3, rate="100mbit")
    try:
        yield h
    finally:
        h.destroy()


def echo_server(hosts: NetnsHosts, i: int, marker: str) -> subprocess.Popen[bytes]:
    code = (
        "import socket,sys;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
        f"s.bind(('{hosts.address(i)}',7001));s.listen();print('up',flush=True)\n"
        "while True:\n c,_=s.accept();c.sendall(open('/etc/hostname','rb').read()[:0]+b'hi');"
        "c.close()"
    )
    argv = hosts.wrap(i, [sys.executable, "-c", code, marker])
    p = subprocess.Popen(argv, stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdout.readline().strip() == b"up"
    return p


def test_hosts_have_addresses_shaped_links_and_can_be_cut(hosts: NetnsHosts) -> None:
    for i in range(3):
        qd = subprocess.run(
            ["tc", "qdisc", "show", "dev", hosts.port(i)], capture_output=True, text=True
        ).stdout
        assert "tbf" in qd and "100Mbit" in qd
    server = echo_server(hosts, 1, uuid.uuid4().hex)
    try:
        with socket.create_connection((hosts.address(1), 7001), timeout=5) as s:
            assert s.recv(10) == b"hi"
        hosts.cut(1)
        with pytest.raises(OSError):
            socket.create_connection((hosts.address(1), 7001), timeout=1).close()
        hosts.restore(1)
        for _ in range(50):
            try:
                socket.create_connection((hosts.address(1), 7001), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("host 1 did not come back after restore")
    finally:
        server.kill()
        server.wait()


def test_each_host_has_a_private_tmp(hosts: NetnsHosts) -> None:
    name = f"shoal-netns-{uuid.uuid4().hex}"
    write = hosts.wrap(0, ["sh", "-c", f"echo mine > /tmp/{name} && cat /tmp/{name}"])
    assert subprocess.run(write, capture_output=True, text=True).stdout == "mine\n"
    read = hosts.wrap(1, ["sh", "-c", f"test -e /tmp/{name} && echo seen || echo absent"])
    assert subprocess.run(read, capture_output=True, text=True).stdout == "absent\n"
    assert not os.path.exists(f"/tmp/{name}")


def _ns_pids(ns: str) -> list[str]:
    return subprocess.run(
        ["ip", "netns", "pids", ns], capture_output=True, text=True
    ).stdout.split()


def test_destroy_removes_namespaces_links_and_processes() -> None:
    h = NetnsHosts.create(2)
    namespaces, bridge = list(h.hosts), h.bridge
    sleeper = subprocess.Popen(h.wrap(0, ["sleep", "600"]))
    # destroy kills what runs in a host: wait until the sleeper runs there (under
    # load, `ip netns exec` and the mount set-up may not have got it in yet)
    deadline = time.monotonic() + 30
    while str(sleeper.pid) not in _ns_pids(namespaces[0]):
        assert time.monotonic() < deadline, "the sleeper never entered its namespace"
        time.sleep(0.05)
    h.destroy()
    assert sleeper.wait(timeout=10) != 0
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(ns in listed for ns in namespaces)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert h.prefix not in links and bridge not in links


def test_copy_survives_a_relay_whose_link_is_cut(hosts: NetnsHosts, tmp_path: Path) -> None:
    """The relay of a chain loses its link mid-copy (no RST, no FIN): after the
    stall timeout its child is adopted and resumes; only the relay is reported."""
    from shoal.core import tls

    # Not under /tmp: each host mounts its own /tmp over it.
    home = Path(tempfile.mkdtemp(prefix="shoal-netns-test-", dir="/var/tmp"))
    tls_dir = home / "tls"
    tls.init_ca(tls_dir)
    tls.issue(tls_dir, tls.CLIENT_NAME, role=tls.OPERATOR)
    agents = []
    lines = ["[nodes]"]
    try:
        for i in range(3):
            name = f"h{i + 1}"
            tls.issue(tls_dir, name)
            node = AgentNode(name, hosts.address(i), 1995, tls_dir)
            argv = hosts.wrap(i, agent_argv([node]))
            p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            agents.append(p)
            lines.append(f'{name} = "{node.listen}"')
        for p in agents:
            assert p.stdout is not None and ready_port(p.stdout.readline()) is not None
        (home / "inventory.toml").write_text("\n".join(lines) + "\n")
        src = tmp_path / "payload"
        src.write_bytes(os.urandom(40_000_000))  # 100mbit links: about 3 s per hop
        env = {**os.environ, "SHOAL_HOME": str(home)}
        copy = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shoal.cli.main",
                "copy",
                "-w",
                "h[1-3]",
                "-W",
                "1",
                "--stall-timeout",
                "2",
                "--connect-timeout",
                "2",
                "--json",
                str(src),
                "/tmp/",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        time.sleep(1.5)  # let the chain h1 > h2 > h3 get going
        hosts.cut(1)  # h2, the relay, loses its link
        out, err = copy.communicate(timeout=120)
        import json

        states = {n: v["state"] for n, v in json.loads(out)["nodes"].items()}
        assert states == {"h1": "PASS", "h2": "UNREACHABLE", "h3": "PASS"}, err
        check = [
            sys.executable,
            "-m",
            "shoal.cli.main",
            "run",
            "-w",
            "h3",
            "-l",
            "--",
            "cksum < /tmp/payload; ls -a /tmp",
        ]
        got = subprocess.run(check, capture_output=True, text=True, env=env).stdout.split("\n")[1:]
        want = subprocess.run(["sh", "-c", f"cksum < {src}"], capture_output=True, text=True)
        assert got[0] == want.stdout.strip()
        assert not any(".shoal-" in f for f in got), got
    finally:
        for p in agents:
            p.kill()
        shutil.rmtree(home, ignore_errors=True)


def test_destroy_leaves_nothing_of_a_host_that_keeps_forking() -> None:
    """A process forking while destroy kills it must not leave a child behind
    (one scan then one kill did: the child born in between survived)."""
    h = NetnsHosts.create(1)
    ns = h.hosts[0]
    inode = os.stat(f"/run/netns/{ns}").st_ino
    nap = f"600.{uuid.uuid4().int % 10**6:06d}"  # a duration only this test's sleeps have
    spawner = subprocess.Popen(h.wrap(0, ["sh", "-c", f"while :; do sleep {nap} & done"]))
    try:
        deadline = time.monotonic() + 30
        while len(_ns_pids(ns)) < 20:
            assert time.monotonic() < deadline, "the spawner never got going in its host"
            time.sleep(0.05)
        h.destroy()
        assert spawner.wait(timeout=10) != 0
        left = []
        for d in filter(str.isdigit, os.listdir("/proc")):
            try:
                in_host = os.stat(f"/proc/{d}/ns/net").st_ino == inode
                cmd = Path(f"/proc/{d}/cmdline").read_bytes()
            except OSError:
                continue
            if in_host or nap.encode() in cmd:
                left.append(d)
        assert left == []
    finally:
        if spawner.poll() is None:
            spawner.kill()
        subprocess.run(["pkill", "-9", "-f", f"sleep {nap}"])
