"""What a local cluster keeps in $SHOAL_HOME/cluster/state.json, so that
another shoal command (`shoal cluster down`) finds its processes."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from shoal.errors import ConfigError


@dataclass
class Proc:
    """One agent process and the nodes it hosts."""

    pid: int
    names: list[str]
    log: str
    create_time: float = 0.0  # guards against a recycled pid

    def alive(self) -> bool:
        import psutil

        try:
            p = psutil.Process(self.pid)
            return (
                abs(p.create_time() - self.create_time) < 1.0 and p.status() != psutil.STATUS_ZOMBIE
            )
        except psutil.Error:
            return False


@dataclass
class State:
    insecure: bool = False
    isolated: bool = False
    per_process: int = 1
    ports: dict[str, int] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    default_inventory: bool = False  # we wrote $SHOAL_HOME/inventory.toml
    hosts: dict[str, str] = field(default_factory=dict)  # node -> address (127.0.0.1)
    netns: dict[str, str] = field(default_factory=dict)  # node -> its network namespace
    controller: str | None = None  # agents register and heartbeat there

    @classmethod
    def load(cls, path: Path) -> State:
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as e:
            raise ConfigError(f"cluster state {path} is unreadable: {e}") from e
        try:
            procs = [Proc(**p) for p in raw.pop("procs", [])]
            known = {f.name for f in fields(cls)}  # a newer shoal may have written more
            return cls(**{k: v for k, v in raw.items() if k in known}, procs=procs)
        except (TypeError, AttributeError) as e:
            raise ConfigError(f"cluster state {path} is unreadable: {e}") from e

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        tmp.replace(path)

    def proc_of(self, name: str) -> Proc | None:
        for p in self.procs:
            if name in p.names:
                return p
        return None
