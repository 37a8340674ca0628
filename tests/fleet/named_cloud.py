"""A Libcloud driver for tests: Libcloud's own DummyNodeDriver, but it keeps
the names it is given and its hosts in a JSON file, so a controller process
and the test see the same cloud (and a restart does not forget it)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from libcloud.compute.base import Node
from libcloud.compute.drivers.dummy import DummyNodeDriver
from libcloud.compute.types import NodeState


class NamedCloud(DummyNodeDriver):  # type: ignore[misc]
    name = "named test cloud"

    def __init__(self, creds: str, state: str = "") -> None:
        super().__init__(0)
        self.creds = creds
        self.file = Path(state or os.environ["NAMED_CLOUD_FILE"])

    def _load(self) -> dict[str, Any]:
        if self.file.exists():
            return dict(json.loads(self.file.read_text()))
        return {"hosts": {}, "calls": [], "next": 1}

    def _save(self, d: dict[str, Any]) -> None:
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(d))
        tmp.replace(self.file)

    def list_nodes(self) -> list[Node]:
        return [
            Node(i, h["name"], NodeState.RUNNING, [], [], self)
            for i, h in self._load()["hosts"].items()
        ]

    def create_node(self, name: str, size: Any, image: Any, **extra: Any) -> Node:
        d = self._load()
        i = f"vm-{d['next']}"
        d["next"] += 1
        d["hosts"][i] = {"name": name, "size": size.id, "image": image.id, "extra": extra}
        d["calls"].append(["create", name, self.creds])
        self._save(d)
        return Node(i, name, NodeState.RUNNING, [], [], self)

    def destroy_node(self, node: Node) -> bool:
        d = self._load()
        d["hosts"].pop(node.id, None)
        d["calls"].append(["destroy", node.name, self.creds])
        self._save(d)
        return True
