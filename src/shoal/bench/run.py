"""`shoal bench run`: a campaign runs on the agents, not in this client.

The preflight must pass on every host. Then each host gets one job
(shoal.fanout.start_job, kind "bench"): per layout, the warm-ups and then the
repetitions as stages in turn; the slots of a stage start at once, each a
sandbox of its own (cpus, mems, memory with swap off, pids, scratch, time
limit), its output in a log on the host. The client may go: `status`
(follow) reattaches from the results directory, `stop` stops every host's
job. Once a host's job ended its logs come back through `gather` into
DIR/logs/HOST/ (warm-ups DIR/warmup/HOST/), and the logs are parsed and
reported as `shoal bench parse` does. A host that died is reported and the
campaign is finished on the others; a host already running a campaign
refuses the second, and then the campaign starts nowhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shoal import __version__
from shoal.bench.campaign import Campaign, fill
from shoal.bench.extract import Parsed, parse_logs
from shoal.bench.preflight import Preflight, preflight
from shoal.bench.slots import LayoutPlan, Slot
from shoal.bench.timestamps import CAPTURE
from shoal.core.config import Settings
from shoal.errors import UsageError

KIND = "bench"
LOG_GROUP = r"logs/(?P<host>[^/]+)/(?P<layout>[^/]+)-r(?P<rep>\d+)-s(?P<slot>\d+)\.log$"
ENDED = ("done", "stopped", "lost")


@dataclass
class SlotRun:
    host: str
    layout: str
    rep: int  # 1-based among the reported repetitions; warm-ups: negative
    slot: int
    cpus: str
    state: str
    exit_code: int
    reason: str
    wall_s: float
    cpu_s: float
    peak_memory: int
    log: str
    scratch_freed: int = 0  # bytes the agent removed with the slot's scratch


@dataclass
class HostState:
    host: str
    state: str  # running, done, stopped, lost, or the node's fan-out state (UNREACHABLE...)
    stage: int = 0
    stages: int = 0
    reason: str = ""
    dir: str = ""
    steps: list[Any] = field(default_factory=list)  # pb.JobStepResult


@dataclass
class Progress:
    out: Path
    job_id: str
    hosts: list[HostState]

    @property
    def finished(self) -> bool:
        """Nothing runs any more that we could still collect."""
        return all(h.state != "running" for h in self.hosts)


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


def _stages(c: Campaign, plans: list[LayoutPlan]) -> list[list[Any]]:
    from shoal import fanout

    assert c.command is not None
    stages: list[list[Any]] = []
    for lay in c.layouts:
        for k in range(-c.warmups, c.repetitions):
            where, rep = ("warmup", k + c.warmups + 1) if k < 0 else ("logs", k + 1)
            stage = []
            for p in (p for p in plans if p.layout == lay.label):
                for s in p.slots:
                    v = _values(c, p.host, p.layout, rep, s)
                    res = fanout.Resources(
                        cpus=s.cpu_list, mems=s.mem_list, memory=s.memory, pids=c.command.pids,
                        scratch=c.scratch.dir if c.scratch else "",
                    )  # fmt: skip
                    stage.append(fanout.Step(
                        f"{where}/{lay.label}-r{rep}-s{s.index}", fill(c.command.run, v),
                        env={k: fill(x, v) for k, x in c.command.env.items()},
                        cwd=c.command.cwd, timeout=c.time_limit_s, resources=res,
                    ))  # fmt: skip
            stages.append(stage)
    return stages


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)


def _meta(out: Path) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads((out / "campaign.json").read_text())
    except FileNotFoundError:
        raise UsageError(f"{out} holds no campaign (no campaign.json)") from None
    except ValueError as e:
        raise UsageError(f"{out}/campaign.json: {e}") from None
    if "job_id" not in doc:
        raise UsageError(f"{out}/campaign.json names no running campaign")
    return doc


def start_campaign(
    c: Campaign, out: Path, *, nodes: str | None = None, settings: Settings | None = None
) -> Progress:
    """Preflight, then start every host's job; returns at once."""
    from shoal import fanout
    from shoal.fanout.jobs import new_job_id

    if c.command is None:
        raise UsageError(f"campaign {c.name}: no [command] to run")
    if not c.phases and not c.metrics:
        raise UsageError(f"campaign {c.name}: no [[phases]] or [[metrics]] to read from the logs")
    s = settings or Settings.load()
    if (out / "logs").exists() or (out / "campaign.json").exists():
        raise UsageError(f"{out} holds a campaign already: give a new results directory")
    pre: Preflight = preflight(c, nodes=nodes, settings=s)
    bad = [f"{k.host}: {k.name}: {k.detail}" for k in pre.checks if not k.ok]
    if bad:
        raise UsageError("preflight failed, nothing started: " + "; ".join(bad))
    hosts = list(dict.fromkeys(p.host for p in pre.plans))
    plans = {h: _stages(c, [p for p in pre.plans if p.host == h]) for h in hosts}
    stamp = c.parse.timestamp == CAPTURE or any(p.timestamp == CAPTURE for p in c.phases)
    job_id = new_job_id(KIND)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "campaign": c.model_dump(mode="json", by_alias=True),
        "shoal_version": __version__,
        "job_id": job_id,
        "started": time.time(),
        "hosts": pre.recorded,
        "plans": pre.to_json()["plans"],
        "slots": [],
    }
    _write_json(out / "campaign.json", meta)  # first: `status` finds the job even if we die
    r = fanout.start_job(hosts, KIND, plans, job_id=job_id, label=c.name, stamp=stamp,
                         settings=s)  # fmt: skip
    refused = [n for n in r if not n.ok]
    if refused:
        started = [n.name for n in r if n.ok]
        if started:
            fanout.jobs(started, job_id=job_id, stop=True, settings=s)
            fanout.jobs(started, job_id=job_id, forget=True, settings=s)
        (out / "campaign.json").unlink()
        why = "; ".join(f"{n.name}: {n.reason or n.state}" for n in refused)
        raise UsageError(f"campaign {c.name} started nowhere: {why}")
    return Progress(out, job_id, [HostState(h, "running", 0, len(plans[h])) for h in hosts])


def status(out: Path, *, stop: bool = False, settings: Settings | None = None) -> Progress:
    """Every host's job of the campaign in ``out``; ``stop``: stop them first."""
    from shoal import fanout

    meta = _meta(out)
    s = settings or Settings.load()
    hosts = list(dict.fromkeys(p["host"] for p in meta["plans"]))
    r = fanout.jobs(hosts, job_id=meta["job_id"], stop=stop, settings=s)
    got = []
    for n in r:
        if n.ok and n.jobs:
            j = n.jobs[0]
            got.append(HostState(n.name, j.state, j.stage, j.stages, j.reason, j.dir,
                                 list(j.steps)))  # fmt: skip
        else:
            got.append(HostState(n.name, str(n.state or "no answer"), reason=n.reason))
    return Progress(out, meta["job_id"], got)


def follow(
    out: Path,
    *,
    settings: Settings | None = None,
    poll: float = 2.0,
    on_progress: Callable[[Progress], None] | None = None,
) -> Progress:
    """Until every host's job ended (or its host is gone)."""
    while True:
        p = status(out, settings=settings)
        if on_progress is not None:
            on_progress(p)
        if p.finished:
            return p
        time.sleep(poll)


def collect(
    p: Progress, *, settings: Settings | None = None
) -> tuple[Parsed | None, list[SlotRun]]:
    """Logs of every host whose job ended back into the results directory,
    then parsed (runs.json) as `shoal bench parse` does; None when no
    repetition's log came back (stopped during the warm-ups, every host lost)."""
    from shoal.fanout.transfer import gather_async

    out, meta = p.out, _meta(p.out)
    c = Campaign.model_validate(meta["campaign"])
    s = settings or Settings.load()
    inbox = out / ".gathered"
    inbox.mkdir(exist_ok=True)

    async def fetch_all() -> list[Any]:
        ended = [h for h in p.hosts if h.state in ENDED and h.dir]
        return await asyncio.gather(*(
            gather_async(h.host, h.dir, inbox, recursive=True, settings=s) for h in ended
        ))  # fmt: skip

    gathered = {n.name: n for rep in asyncio.run(fetch_all()) for n in rep}
    warnings = []
    for h in p.hosts:
        g = gathered.get(h.host)
        if g is None or not g.ok or g.path is None:
            why = g.reason if g is not None else h.reason or h.state
            warnings.append(f"{h.host}: no logs collected ({h.state}: {why})".rstrip())
            continue
        for where in ("logs", "warmup"):
            src, dst = g.path / where, out / where / h.host
            if src.is_dir():
                dst.parent.mkdir(exist_ok=True)
                shutil.rmtree(dst, ignore_errors=True)
                src.rename(dst)
        shutil.rmtree(g.path, ignore_errors=True)
    shutil.rmtree(inbox, ignore_errors=True)
    slot_runs = _slot_runs(p, meta, out)
    meta["slots"] = [asdict(r) for r in slot_runs]
    meta["ended"] = {h.host: {"state": h.state, "reason": h.reason} for h in p.hosts}
    meta["scratch_freed"] = sum(r.scratch_freed for r in slot_runs)
    _write_json(out / "campaign.json", meta)
    if not any((out / "logs").rglob("*.log")):
        for w in warnings:
            print(f"shoal: bench: warning: {w}", file=sys.stderr)
        return None, slot_runs
    parsed = parse_logs([str(out / "logs" / "**" / "*.log")], c, LOG_GROUP)
    parsed.slots = {lay.label: max((len(x["slots"]) for x in meta["plans"]
                                    if x["layout"] == lay.label), default=1)
                    for lay in c.layouts}  # fmt: skip
    parsed.warnings += warnings
    for r in slot_runs:
        if r.state != "PASS" and r.rep > 0:
            parsed.warnings.append(
                f"{r.host} {r.layout} rep {r.rep} slot {r.slot}: {r.state} {r.reason}".rstrip()
            )
    parsed.save(out)
    return parsed, slot_runs


def _slot_runs(p: Progress, meta: dict[str, Any], out: Path) -> list[SlotRun]:
    from shoal.fanout.report import NodeState

    cpus = {(x["host"], x["layout"], s["index"]): s["cpu_list"]
            for x in meta["plans"] for s in x["slots"]}  # fmt: skip
    runs = []
    for h in p.hosts:
        for st in h.steps:
            where, _, name = st.name.partition("/")
            layout, r, slot = name.rsplit("-", 2)
            rep, index = int(r[1:]), int(slot[1:])
            res = st.result
            runs.append(SlotRun(
                h.host, layout, rep if where == "logs" else -rep, index,
                cpus.get((h.host, layout, index), ""), str(NodeState.from_wire(res.state)),
                res.exit_code, res.reason, (res.timing.end_ns - res.timing.start_ns) / 1e9,
                res.cpu_ns / 1e9, res.peak_memory, str(out / where / h.host / f"{name}.log"),
                res.scratch_freed,
            ))  # fmt: skip
    return runs


def run_campaign(
    c: Campaign,
    out: Path,
    *,
    nodes: str | None = None,
    settings: Settings | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    poll: float = 2.0,
) -> tuple[Parsed | None, list[SlotRun]]:
    """Start, follow until every host ended, collect. Interrupting the wait
    (KeyboardInterrupt) leaves the campaign running on the hosts."""
    s = settings or Settings.load()
    p = start_campaign(c, out, nodes=nodes, settings=s)
    if on_progress is not None:
        on_progress(p)
    p = follow(out, settings=s, poll=poll, on_progress=on_progress)
    return collect(p, settings=s)
