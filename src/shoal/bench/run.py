"""`shoal bench run`, first form: synchronous, from this client. The
preflight must pass on every host; then per layout, warm-ups and repetitions
in turn, every slot of every host starts at once as a sandbox of its own
(cpus, mems, memory with swap off, pids, scratch, time limit) through
shoal.fanout.run; each slot's output streams into its log in the results
directory, which is then parsed and reported as `shoal bench parse` does.
Not yet detached: the campaign stops with the client."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from shoal import __version__
from shoal.bench.campaign import Campaign, fill
from shoal.bench.extract import Parsed, parse_logs
from shoal.bench.preflight import Preflight, preflight
from shoal.bench.slots import LayoutPlan, Slot
from shoal.core.config import Settings
from shoal.core.wire import pb
from shoal.errors import UsageError

LOG_GROUP = r"logs/(?P<host>[^/]+)/(?P<layout>[^/]+)-r(?P<rep>\d+)-s(?P<slot>\d+)\.log$"


@dataclass
class SlotRun:
    host: str
    layout: str
    rep: int  # 0-based among the reported repetitions; warm-ups: negative
    slot: int
    cpus: str
    state: str
    exit_code: int
    reason: str
    wall_s: float
    cpu_s: float
    peak_memory: int
    log: str


def _values(c: Campaign, host: str, layout: str, rep: int, s: Slot) -> dict[str, str]:
    return {
        "scratch": "$SHOAL_SCRATCH" if c.scratch else "$TMPDIR",  # made by the agent per run
        "slot": str(s.index),
        "cpus": s.cpu_list,
        "threads": str(s.threads),
        "cores": str(s.cores),
        "node": host,
        "layout": layout,
        "rep": str(rep),
    }


async def _slot(
    c: Campaign, p: LayoutPlan, s: Slot, rep: int, log: Path, settings: Settings
) -> SlotRun:
    from shoal import fanout

    assert c.command is not None
    v = _values(c, p.host, p.layout, rep, s)
    res = fanout.Resources(
        cpus=s.cpu_list, mems=s.mem_list, memory=s.memory, pids=c.command.pids,
        scratch=c.scratch.dir if c.scratch else "",
    )  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as f:

        def on_event(ev: pb.TaskEvent, _node: Any, f: IO[bytes] = f) -> None:
            if ev.WhichOneof("kind") == "output":
                f.write(ev.output.data)

        r = await fanout.run_async(
            p.host, fill(c.command.run, v), env={k: fill(x, v) for k, x in c.command.env.items()},
            timeout=c.time_limit_s, cwd=c.command.cwd, resources=res, settings=settings,
            output_cap=0,
            on_event=on_event,
        )  # fmt: skip
    n = r[p.host]
    return SlotRun(
        p.host, p.layout, rep, s.index, s.cpu_list, str(n.state), n.exit_code, n.reason,
        n.wall_s, n.cpu_ns / 1e9, n.peak_memory, str(log),
    )  # fmt: skip


async def _campaign(c: Campaign, pre: Preflight, out: Path, s: Settings) -> list[SlotRun]:
    done: list[SlotRun] = []
    for lay in c.layouts:
        plans = [p for p in pre.plans if p.layout == lay.label]
        for k in range(-c.warmups, c.repetitions):
            where = out / ("warmup" if k < 0 else "logs")
            rep = k + c.warmups + 1 if k < 0 else k + 1
            runs = [
                _slot(c, p, slot, rep, where / p.host / f"{lay.label}-r{rep}-s{slot.index}.log", s)
                for p in plans
                for slot in p.slots
            ]
            got = await asyncio.gather(*runs)
            if k < 0:
                for g in got:
                    g.rep = -g.rep
            done += got
    return done


def run_campaign(
    c: Campaign, out: Path, *, nodes: str | None = None, settings: Settings | None = None
) -> tuple[Parsed, list[SlotRun]]:
    """Runs every layout's repetitions; writes logs, campaign.json and runs.json under ``out``."""
    if c.command is None:
        raise UsageError(f"campaign {c.name}: no [command] to run")
    if not c.phases and not c.metrics:
        raise UsageError(f"campaign {c.name}: no [[phases]] or [[metrics]] to read from the logs")
    s = settings or Settings.load()
    pre = preflight(c, nodes=nodes, settings=s)
    bad = [f"{k.host}: {k.name}: {k.detail}" for k in pre.checks if not k.ok]
    if bad:
        raise UsageError("preflight failed, nothing started: " + "; ".join(bad))
    if (out / "logs").exists():
        raise UsageError(f"{out}/logs exists: give a new results directory")
    slot_runs = asyncio.run(_campaign(c, pre, out, s))
    meta = {
        "campaign": c.model_dump(mode="json", by_alias=True),
        "shoal_version": __version__,
        "hosts": pre.recorded,
        "plans": pre.to_json()["plans"],
        "slots": [asdict(r) for r in slot_runs],
    }
    (out / "campaign.json").write_text(json.dumps(meta, indent=2) + "\n")
    parsed = parse_logs([str(out / "logs" / "**" / "*.log")], c, LOG_GROUP)
    parsed.slots = {lay.label: max((len(p.slots) for p in pre.plans if p.layout == lay.label),
                                   default=1) for lay in c.layouts}  # fmt: skip
    for r in slot_runs:
        if r.state != "PASS" and r.rep > 0:
            parsed.warnings.append(
                f"{r.host} {r.layout} rep {r.rep} slot {r.slot}: {r.state} {r.reason}".rstrip()
            )
    parsed.save(out)
    return parsed, slot_runs
