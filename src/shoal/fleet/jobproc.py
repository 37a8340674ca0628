"""A cron job's fan-out in a process of its own, through the library API.

    python -m shoal.fleet.jobproc ACTION -w NODES [-x NODES] [-- COMMAND]

ACTION is command, ping or facts. It calls shoal.fanout (never the CLI) and
writes one JSON document, {"nodes": {name: NodeState}}, or {"error": text}
with the error's exit status. A process per run keeps a hung or crashing
fan-out away from the controller's event loop.
"""

from __future__ import annotations

import json
import sys

from shoal.errors import EXIT_USAGE, ShoalError


def _parse(argv: list[str]) -> tuple[str, str, str, str]:
    if not argv:
        raise ShoalError("usage: jobproc ACTION -w NODES [-x NODES] [-- COMMAND]", exit_code=2)
    action, rest = argv[0], argv[1:]
    nodes = exclude = command = ""
    while rest:
        flag = rest.pop(0)
        if flag == "--":
            command = " ".join(rest)
            break
        if flag in ("-w", "-x") and rest:
            value = rest.pop(0)
            nodes, exclude = (value, exclude) if flag == "-w" else (nodes, value)
        else:
            raise ShoalError(f"jobproc: unexpected argument {flag!r}", exit_code=EXIT_USAGE)
    return action, nodes, exclude, command


def main(argv: list[str]) -> int:
    from shoal import fanout
    from shoal.core.config import Settings

    try:
        action, nodes, exclude, command = _parse(argv)
        settings = Settings.load()
        ex = exclude or None
        if action == "command":
            report = fanout.run(nodes, command, exclude=ex, settings=settings, output_cap=0)
        elif action == "ping":
            report = fanout.ping(nodes, exclude=ex, settings=settings)
        elif action == "facts":
            report = fanout.facts(nodes, exclude=ex, settings=settings)
        else:
            raise ShoalError(f"jobproc: unknown action {action!r}", exit_code=EXIT_USAGE)
    except ShoalError as e:
        json.dump({"error": e.message}, sys.stdout)
        return e.exit_code
    json.dump({"nodes": {n.name: n.state for n in report}}, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
