"""A package's public face, imported on first use: `shoal run` starts without
loading grpc, cryptography or databases that a name it never touches needs."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def exports(package: str, face: str) -> tuple[Callable[[str], object], list[str]]:
    """(``__getattr__``, ``__all__``) for a package; face: one "module: names"
    line per module of it."""
    where = {}
    for line in face.strip().splitlines():
        module, _, names = line.partition(":")
        where.update(dict.fromkeys(names.split(), module.strip()))

    def __getattr__(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__, sorted(where)
