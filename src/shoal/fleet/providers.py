"""Providers create and delete hosts; replacement goes through one of them.

Every call carries the operation's idempotency key: a provider asked twice
with the same key must not create two hosts.

``command`` provider contract: the operator's program is run as
``PROGRAM create|delete`` with one JSON object on stdin:
    {"action": "create"|"delete", "name": "cn12", "pool": "default",
     "key": "replace:cn12:3"}
and must print one JSON object on stdout and exit 0:
    {"ok": true, "id": "i-0abc..."}      (or {"ok": false, "error": "..."})
A non-zero exit or unparsable output is a failure; the controller retries
with back-off. ``delete`` of a host that does not exist must succeed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Protocol


class ProviderError(Exception):
    pass


class Provider(Protocol):
    async def create(self, name: str, pool: str, key: str) -> str: ...
    async def delete(self, name: str, pool: str, key: str) -> None: ...


class CommandProvider:
    def __init__(self, program: str, timeout: float = 600.0) -> None:
        self.argv = shlex.split(program)
        self.timeout = timeout

    async def _call(self, action: str, name: str, pool: str, key: str) -> dict[str, object]:
        req = json.dumps({"action": action, "name": name, "pool": pool, "key": key}).encode()
        proc = await asyncio.create_subprocess_exec(
            *self.argv,
            action,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(req), self.timeout)
        except TimeoutError as e:
            proc.kill()
            await proc.wait()
            raise ProviderError(f"{action} {name}: timed out") from e
        except asyncio.CancelledError:  # controller stopping: the log resumes it on start
            proc.kill()
            await asyncio.shield(proc.wait())
            raise
        try:
            res = json.loads(out)
            assert isinstance(res, dict)
        except (ValueError, AssertionError) as e:
            raise ProviderError(
                f"{action} {name}: exit {proc.returncode}, unparsable output"
                f" ({err.decode(errors='replace').strip()[-200:]})"
            ) from e
        if proc.returncode != 0 or not res.get("ok"):
            raise ProviderError(f"{action} {name}: {res.get('error') or 'failed'}")
        return res

    async def create(self, name: str, pool: str, key: str) -> str:
        return str((await self._call("create", name, pool, key)).get("id", name))

    async def delete(self, name: str, pool: str, key: str) -> None:
        await self._call("delete", name, pool, key)


class LocalProvider:
    """Agent processes on this machine; a pid file per name makes calls idempotent.

    ``agent_argv`` is formatted with {name}; the default runs a real
    `shoal agent --controller`. With ``tls_dir`` holding the cluster CA's key,
    a new host gets its certificate issued first, as cloud-init would give it.
    """

    def __init__(self, state_dir: Path, agent_argv: list[str], tls_dir: Path | None = None) -> None:
        self.dir = state_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.agent_argv = agent_argv
        self.tls_dir = tls_dir

    def _pidfile(self, name: str) -> Path:
        return self.dir / f"{name}.pid"

    def _alive(self, name: str) -> int | None:
        try:
            key_pid = self._pidfile(name).read_text().split()
            pid = int(key_pid[1])
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError, IndexError):
            return None

    async def create(self, name: str, pool: str, key: str) -> str:
        pf = self._pidfile(name)
        if pf.exists() and pf.read_text().split()[:1] == [key] and self._alive(name):
            return name  # already created for this operation
        if (
            self.tls_dir is not None
            and (self.tls_dir / "ca.key").exists()
            and not (self.tls_dir / f"{name}.crt").exists()
        ):
            from shoal.core import tls

            tls.issue(self.tls_dir, name)
        argv = [a.format(name=name) for a in self.agent_argv]
        log = (self.dir / f"{name}.log").open("ab")
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        pf.write_text(f"{key} {proc.pid}\n")
        return name

    async def delete(self, name: str, pool: str, key: str) -> None:
        pid = self._alive(name)
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGTERM)
            except OSError:
                pass
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except OSError:
                    break
                await asyncio.sleep(0.1)
        self._pidfile(name).unlink(missing_ok=True)


def default_local_argv(controller_url: str, tls_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "shoal.cli.main",
        "agent",
        "--name",
        "{name}",
        "--listen",
        "127.0.0.1:0",
        "--tls-dir",
        str(tls_dir),
        "--controller",
        controller_url,
        "--heartbeat",
        "1",
    ]


class LibcloudProvider:
    """Hosts on a cloud through Apache Libcloud (EC2, GCE, Azure, Alibaba ECS,
    OpenStack, ... or a driver of your own); the config file is described in
    cloudcall.LibcloudHosts. The config is checked here, at start; each call
    runs in its own process (Libcloud is blocking) through the command
    provider's contract, with its time-out and cancellation."""

    def __init__(self, config: Path, timeout: float = 600.0) -> None:
        from shoal.fleet.cloudcall import LibcloudHosts

        # a bad config is a one-line error now, not at the first outage
        LibcloudHosts(config, connect=False)
        argv = [sys.executable, "-m", "shoal.fleet.cloudcall", "--config", str(config)]
        self._cmd = CommandProvider(shlex.join(argv), timeout)

    async def create(self, name: str, pool: str, key: str) -> str:
        return await self._cmd.create(name, pool, key)

    async def delete(self, name: str, pool: str, key: str) -> None:
        await self._cmd.delete(name, pool, key)
