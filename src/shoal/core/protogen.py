"""Compile proto/shoal/v1/*.proto into the committed generated modules.

`python -m shoal.core.protogen` (make proto) regenerates them in place; `generate(dest)`
writes them elsewhere so a test can tell when the committed ones are stale.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PROTO_DIR = ROOT / "proto"
OUT_DIR = Path(__file__).resolve().parent / "wire"


def protos() -> list[Path]:
    return sorted((PROTO_DIR / "shoal" / "v1").glob("*.proto"))


def generate(dest: Path) -> list[Path]:
    from grpc_tools import protoc  # dev dependency only

    dest.mkdir(parents=True, exist_ok=True)
    files = [str(p.relative_to(PROTO_DIR)) for p in protos()]
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"--python_out={dest}",
        f"--pyi_out={dest}",
        f"--grpc_python_out={dest}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed")
    out = sorted(p for p in (dest / "shoal" / "v1").glob("*") if p.suffix in (".py", ".pyi"))
    # Generated code imports "shoal.v1.x_pb2"; it lives under shoal.core.wire.
    for p in out:
        text = p.read_text()
        text = re.sub(
            r"^from shoal\.v1 import", "from shoal.core.wire.shoal.v1 import", text, flags=re.M
        )
        p.write_text(text)
    for pkg in (dest / "shoal", dest / "shoal" / "v1"):
        (pkg / "__init__.py").touch()
    return out


if __name__ == "__main__":
    for path in generate(OUT_DIR):
        print(path.relative_to(ROOT), file=sys.stderr)
