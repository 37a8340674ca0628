"""Private sshd "hosts" on loopback for comparing with clush/scp (bench only).

Each host alias nodeI is its own sshd on its own port, started in its own
mount namespace with a private tmpfs /tmp (as shoal's local nodes are), so
that copying into /tmp on every host writes separate files. Never touches
the system's sshd or ssh configuration.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from shoal.deploy import unshare


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def sshd_hosts(n: int, *, base: Path | None = None) -> Iterator[Path]:
    """n sshd hosts node1..nodeN; yields the directory holding ssh_config."""
    d = Path(tempfile.mkdtemp(prefix="shoal-bench-ssh-", dir=base or "/var/tmp"))
    for key in ("host_key", "id"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True
        )
    shutil.copy(d / "id.pub", d / "authorized_keys")
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege-separation dir sshd insists on
    procs: list[subprocess.Popen[bytes]] = []
    ports = [free_port() for _ in range(n)]
    try:
        for i, port in enumerate(ports, 1):
            cfg = d / f"sshd_{i}.conf"
            cfg.write_text(
                f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n"
                f"AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd_{i}.pid\n"
                "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
                "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                "MaxStartups 1000\nMaxSessions 1000\nUseDNS no\nLogLevel ERROR\n"
                "Subsystem sftp /usr/lib/openssh/sftp-server\n"
            )
            argv = ["/usr/sbin/sshd", "-D", "-f", str(cfg), "-E", str(d / f"sshd_{i}.log")]
            if os.geteuid() == 0:
                argv = unshare(argv, setup="mount -t tmpfs -o size=50% shoal /tmp")
            procs.append(subprocess.Popen(argv, start_new_session=True))
        hosts = "".join(
            f"Host node{i}\n  HostName 127.0.0.1\n  Port {p}\n" for i, p in enumerate(ports, 1)
        )
        (d / "ssh_config").write_text(
            f"{hosts}Host *\n  User {os.environ.get('USER', 'root')}\n  IdentityFile {d}/id\n"
            "  IdentitiesOnly yes\n  StrictHostKeyChecking no\n"
            "  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  BatchMode yes\n"
        )
        deadline = time.monotonic() + 15
        for port, proc in zip(ports, procs, strict=True):
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sshd on {port} did not start")
                time.sleep(0.05)
        yield d
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        shutil.rmtree(d, ignore_errors=True)
