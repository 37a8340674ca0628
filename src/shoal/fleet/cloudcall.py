"""Libcloud calls for the controller's `libcloud` provider, in a process of
their own: Libcloud is blocking, and the controller does no blocking I/O in
its event loop nor in thread pools. Speaks the `command` provider's contract
(providers.py): ``python -m shoal.fleet.cloudcall --config FILE create|delete``
with the request as JSON on stdin, the answer as JSON on stdout.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
from pathlib import Path
from typing import Any

from shoal.core.config import read_toml
from shoal.errors import ConfigError, ProviderError, ShoalError


class LibcloudHosts:
    """Hosts on a cloud through Apache Libcloud (EC2, GCE, Azure, Alibaba ECS,
    OpenStack, ... or a driver of your own), configured by a TOML file:

        driver = "ec2"              # a Libcloud compute provider, or "module:Class"
        [args]                      # the driver's constructor arguments
        key = "AKIA..."
        secret_file = "/etc/shoal/aws-secret"   # NAME_file: NAME read from a file
        region = "eu-west-1"
        [node]                      # create_node: ids or names
        size = "c6i.large"
        image = "ami-0abc123"
        location = "eu-west-1a"     # optional
        [node.extra]                # verbatim keyword arguments; {name} is the node's
        ex_userdata = "#cloud-config ... shoal agent --name {name} ..."

    A host carries its node's name, which makes both calls idempotent: create
    returns the live host of that name if there is one (an operation always
    deletes first, so it can only be this operation's), delete removes every
    live host of that name and succeeds when there is none.
    """

    def __init__(self, config: Path, connect: bool = True) -> None:
        """``connect=False`` checks the config and the driver's arguments without
        making the driver (some, like GCE's, authenticate over the network)."""
        data = read_toml(config, "libcloud config")
        spec = data.get("driver")
        if not isinstance(spec, str) or not spec:
            raise ConfigError(f"{config}: driver: a Libcloud provider name or module:Class")
        args = dict(data.get("args") or {})
        for k in [k for k in args if k.endswith("_file")]:
            path = Path(str(args.pop(k)))
            try:
                args[k.removesuffix("_file")] = path.read_text().strip()
            except OSError as e:
                raise ConfigError(f"{config}: args.{k}: {e.strerror}: {path}") from e
        node = dict(data.get("node") or {})
        self.extra: dict[str, object] = dict(node.pop("extra", {}) or {})
        self.node = node
        cls = self._driver_class(spec, config)
        try:
            inspect.signature(cls).bind(**args)
        except TypeError as e:
            raise ConfigError(f"{config}: driver {spec!r}: {e}") from e
        try:
            self.driver: Any = cls(**args) if connect else None
        except (TypeError, ValueError) as e:  # never echo args: they hold the credentials
            raise ConfigError(f"{config}: driver {spec!r}: {type(e).__name__}") from e

    @staticmethod
    def _driver_class(spec: str, config: Path) -> Any:
        try:
            if ":" in spec:
                mod, _, cls_name = spec.partition(":")
                return getattr(importlib.import_module(mod), cls_name)
            from libcloud.compute.providers import get_driver

            return get_driver(spec)
        except ImportError as e:
            raise ConfigError(f"{config}: driver {spec!r}: {e}") from e
        except (AttributeError, TypeError, ValueError) as e:
            raise ConfigError(f"{config}: driver {spec!r}: {type(e).__name__}") from e

    def _find(self, items: list[Any], want: object, what: str) -> Any:
        for x in items:
            if str(getattr(x, "id", "")) == str(want) or getattr(x, "name", None) == want:
                return x
        raise ProviderError(f"no {what} {want!r} at the provider")

    def _live(self, name: str) -> list[Any]:
        from libcloud.compute.types import NodeState

        gone = (NodeState.TERMINATED,)
        return [n for n in self.driver.list_nodes() if n.name == name and n.state not in gone]

    def create(self, name: str) -> str:
        live = self._live(name)
        if live:
            return str(getattr(live[0], "id", name))
        d = self.driver
        kw: dict[str, Any] = {"name": name}
        kw["size"] = self._find(d.list_sizes(), self.node.get("size"), "size")
        kw["image"] = self._find(d.list_images(), self.node.get("image"), "image")
        if self.node.get("location"):
            kw["location"] = self._find(d.list_locations(), self.node["location"], "location")
        for k, v in self.extra.items():
            kw[k] = v.format(name=name) if isinstance(v, str) else v
        return str(d.create_node(**kw).id)

    def delete(self, name: str) -> None:
        for n in self._live(name):
            if not self.driver.destroy_node(n):
                raise ProviderError(f"delete {name}: the provider refused")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="shoal.fleet.cloudcall")
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument("action", choices=["create", "delete"])
    a = ap.parse_args(argv)
    try:
        name = str(json.load(sys.stdin)["name"])
        hosts = LibcloudHosts(a.config)
        if a.action == "create":
            out: dict[str, Any] = {"ok": True, "id": hosts.create(name)}
        else:
            hosts.delete(name)
            out = {"ok": True}
    except ShoalError as e:
        out = {"ok": False, "error": str(e)}
    except Exception as e:  # the cloud's API error, with its message
        out = {"ok": False, "error": f"{type(e).__name__}: {e}"[:500]}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
