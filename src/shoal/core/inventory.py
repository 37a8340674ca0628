"""Inventory: node addresses, ports and @groups from a TOML file.

    [defaults]
    port = 1995                 # optional

    [nodes]
    cn1 = "10.0.0.1"            # address, port from defaults
    cn2 = "10.0.0.2:2000"       # address and port
    "cn[3-8]" = { port = 1996 } # a node set as key; address defaults to the name

    [groups]
    compute = "cn[1-8]"
    gpu = "cn[7-8]"

A node the inventory does not name resolves to ``name:1995``. ``@all`` is every
node the inventory names unless [groups] defines it.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.core.config import DEFAULT_PORT, read_toml
from shoal.errors import ConfigError, NodeSetError, ShoalError, UsageError


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_address(text: str, default_port: int) -> Address:
    """'host', 'host:port' or '[v6]:port' -> Address."""
    text = text.strip()
    if not text:
        raise ValueError("empty address")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"bad address {text!r}")
        port = rest.removeprefix(":") or str(default_port)
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, str(default_port)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad port in address {text!r}")
    return Address(host, int(port))


def parse_listen(text: str, error: type[ShoalError] = UsageError) -> Address:
    """A listen address: 'HOST:PORT' or '[v6]:PORT'; port 0 picks a free one,
    an empty host is the caller's default (host "")."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise error(f"listen address {text!r}: expected HOST:PORT")
    return Address(host.strip("[]"), int(port))


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for a service to serve on, made before anything else
    it creates: a port in use is a ConfigError (one line, exit 5)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host or "0.0.0.0", port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror}") from e
    return sock


@dataclass
class Inventory:
    default_port: int = DEFAULT_PORT
    addresses: dict[str, Address] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    source: Path | None = None

    def address(self, node: str) -> Address:
        return self.addresses.get(node) or Address(node, self.default_port)

    @classmethod
    def load(cls, path: Path | None, default_port: int = DEFAULT_PORT) -> Inventory:
        if path is None:
            return cls(default_port=default_port)
        return cls.from_dict(read_toml(path, "inventory"), path, default_port)

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], path: Path | None = None, default_port: int = DEFAULT_PORT
    ) -> Inventory:
        from ClusterShell.NodeSet import NodeSet, NodeSetParseError

        where = str(path) if path else "inventory"
        unknown = set(data) - {"defaults", "nodes", "groups"}
        if unknown:
            raise ConfigError(f"{where}: unknown table(s) {', '.join(sorted(unknown))}")
        defaults = data.get("defaults", {})
        port = defaults.get("port", default_port)
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError(f"{where}: defaults.port must be a port number")
        inv = cls(default_port=port, source=path)
        nodes = data.get("nodes", {})
        if not isinstance(nodes, dict):
            raise ConfigError(f"{where}: [nodes] must be a table")
        for key, spec in nodes.items():
            try:
                names = list(NodeSet(key))
            except NodeSetParseError as e:
                raise ConfigError(f"{where}: bad node set {key!r} in [nodes]: {e}") from e
            for name in names:
                inv.addresses[name] = _node_address(where, name, spec, port)
        groups = data.get("groups", {})
        if not isinstance(groups, dict):
            raise ConfigError(f"{where}: [groups] must be a table")
        for gname, members in groups.items():
            if isinstance(members, list):
                members = ",".join(str(m) for m in members)
            if not isinstance(members, str):
                raise ConfigError(f"{where}: group {gname!r} must be a node set string")
            inv.groups[gname] = members
        if "all" not in inv.groups and inv.addresses:
            inv.groups["all"] = str(NodeSet.fromlist(list(inv.addresses)))
        return inv


def _node_address(where: str, name: str, spec: Any, port: int) -> Address:
    try:
        if isinstance(spec, str):
            return parse_address(spec, port)
        if isinstance(spec, dict):
            extra = set(spec) - {"address", "port"}
            if extra:
                raise ValueError(f"unknown key(s) {', '.join(sorted(extra))}")
            host = spec.get("address", name)
            p = spec.get("port", port)
            if not isinstance(p, int):
                raise ValueError("port must be an integer")
            return parse_address(f"{host}:{p}" if ":" not in host else host, p)
        raise ValueError("expected an address string or a table")
    except ValueError as e:
        raise ConfigError(f"{where}: node {name}: {e}") from e


__all__ = [
    "Address",
    "Inventory",
    "NodeSetError",
    "listening_socket",
    "parse_address",
    "parse_listen",
]
