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
import contextlib
import json
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Any, Protocol

from shoal.deploy.launch import AgentNode, agent_argv
from shoal.errors import ProviderError


class Provider(Protocol):
    async def create(self, name: str, pool: str, key: str) -> str: ...
    async def delete(self, name: str, pool: str, key: str) -> None: ...


class CommandProvider:
    """``env``: the program's whole environment (default: cleanenv.program_env(),
    the minimal one); the controller's own is never passed on."""

    def __init__(
        self, program: str, timeout: float = 600.0, env: dict[str, str] | None = None
    ) -> None:
        from shoal.fleet.cleanenv import program_env

        self.argv = shlex.split(program)
        self.timeout = timeout
        self.env = program_env(()) if env is None else env

    async def _call(self, action: str, name: str, pool: str, key: str) -> dict[str, object]:
        req = json.dumps({"action": action, "name": name, "pool": pool, "key": key}).encode()
        proc = await asyncio.create_subprocess_exec(
            *self.argv,
            action,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
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
    """Agent processes on this machine, one per node name.

    A host is a process holding ``NAME.lock`` (see localhost.py), so both calls
    ask the kernel, not a record: ``create`` returns the live host made for
    this key if there is one and only then starts one (a host that starts
    while another of its name runs exits at once); ``delete`` sends SIGTERM
    (and SIGCONT: a stopped host cannot act on it), SIGKILL after ``grace``
    seconds, and is done only when the host is gone.

    ``agent_argv`` is formatted with {name}; the default runs a real
    `shoal agent --controller`. With ``tls_dir`` holding the cluster CA's key,
    a new host gets its (node) certificate issued first, as cloud-init would
    give it. A host's environment is cleanenv.host_env: nothing of the
    controller's.
    """

    def __init__(
        self,
        state_dir: Path,
        agent_argv: list[str],
        tls_dir: Path | None = None,
        grace: float = 5.0,
        start_timeout: float = 30.0,
    ) -> None:
        self.dir = state_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.agent_argv = agent_argv
        self.tls_dir = tls_dir
        self.grace = grace
        self.start_timeout = start_timeout

    def lock(self, name: str) -> Path:
        return self.dir / f"{name}.lock"

    async def create(self, name: str, pool: str, key: str) -> str:
        from shoal.fleet.cleanenv import host_env
        from shoal.fleet.localhost import EX_HELD

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        while True:
            h = await self._holder(name)
            if h is not None:
                if h.key == key:
                    return name  # made for this operation already
                raise ProviderError(
                    f"create {name}: a host made for {h.key or 'another operation'}"
                    f" (pid {h.pid}) is still running"
                )
            if (
                self.tls_dir is not None
                and (self.tls_dir / "ca.key").exists()
                and not (self.tls_dir / f"{name}.crt").exists()
            ):
                from shoal.core import tls

                tls.issue(self.tls_dir, name)
            home = self.dir / name
            home.mkdir(exist_ok=True)
            argv = [a.format(name=name) for a in self.agent_argv]
            launcher = [sys.executable, "-m", "shoal.fleet.localhost", str(self.lock(name)), key]
            with (self.dir / f"{name}.log").open("ab") as log:
                proc = await asyncio.create_subprocess_exec(
                    *launcher,
                    "--",
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                    env=host_env(home),
                    cwd=home,
                )
            while proc.returncode is None:  # until it holds the lock, or gives up
                h = await self._holder(name)
                if h is not None and h.pid == proc.pid and h.key == key:
                    return name
                if loop.time() > deadline:
                    raise ProviderError(f"create {name}: the host did not start")
                await asyncio.sleep(0.02)
            if proc.returncode != EX_HELD:
                raise ProviderError(
                    f"create {name}: the host exited {proc.returncode} (see {log.name})"
                )
            # another host of this name got the lock first: look again

    async def _holder(self, name: str) -> Any:
        from shoal.fleet.localhost import holder

        for _ in range(50):  # the instant between a host's lock and its key
            h = holder(self.lock(name))
            if h is None or h.key:
                return h
            await asyncio.sleep(0.01)
        return h

    async def delete(self, name: str, pool: str, key: str) -> None:
        h = await self._holder(name)
        if h is None:
            return
        for sig, wait in (
            (signal.SIGTERM, self.grace),
            (signal.SIGKILL, max(self.grace, 10.0)),
        ):
            for s in (sig, signal.SIGCONT):
                with contextlib.suppress(OSError):
                    os.killpg(h.pid, s)
                with contextlib.suppress(OSError):
                    os.kill(h.pid, s)
            deadline = asyncio.get_running_loop().time() + wait
            while asyncio.get_running_loop().time() < deadline:
                now = await self._holder(name)
                if now is None or now.pid != h.pid:
                    with contextlib.suppress(OSError):  # what it left in its group
                        os.killpg(h.pid, signal.SIGKILL)
                    return
                await asyncio.sleep(0.05)
        raise ProviderError(f"delete {name}: pid {h.pid} still running after SIGKILL")


def default_local_argv(controller_url: str, tls_dir: Path) -> list[str]:
    """A real `shoal agent` of node {name}, heartbeating every second."""
    node = AgentNode("{name}", tls_dir=tls_dir)
    return agent_argv([node], controller=controller_url, heartbeat=1)


class LibcloudProvider:
    """Hosts on a cloud through Apache Libcloud (EC2, GCE, Azure, Alibaba ECS,
    OpenStack, ... or a driver of your own); the config file is described in
    cloudcall.LibcloudHosts. The config is checked here, at start; each call
    runs in its own process (Libcloud is blocking) through the command
    provider's contract, with its time-out and cancellation."""

    def __init__(
        self, config: Path, timeout: float = 600.0, env: dict[str, str] | None = None
    ) -> None:
        from shoal.fleet.cloudcall import LibcloudHosts

        # a bad config is a one-line error now, not at the first outage
        LibcloudHosts(config, connect=False)
        argv = [sys.executable, "-m", "shoal.fleet.cloudcall", "--config", str(config)]
        self._cmd = CommandProvider(shlex.join(argv), timeout, env)

    async def create(self, name: str, pool: str, key: str) -> str:
        return await self._cmd.create(name, pool, key)

    async def delete(self, name: str, pool: str, key: str) -> None:
        await self._cmd.delete(name, pool, key)
