"""Jobs through shoal.fanout against real agents: they run on after the call
returns, in stages, each step in its sandbox with its log on the node; one job
of a kind at a time; stop kills them; an agent that dies leaves them lost."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import psutil
from agentproc import Agents, wait_for

from shoal import fanout
from shoal.core.config import Settings
from shoal.fanout import Step


def _settings(agents: Agents, n: int = 2) -> Settings:
    for i in range(1, n + 1):
        agents.start(f"n{i}")
    return Settings.load(inventory=agents.inventory())


def _status(s: Settings, node: str, job_id: str) -> object:
    r = fanout.jobs(node, job_id=job_id, settings=s)
    assert r[node].state == "PASS", r[node].reason
    (st,) = r[node].jobs
    return st


def test_a_job_runs_its_stages_after_the_call_returned(agents: Agents, tmp_path: Path) -> None:
    s = _settings(agents)
    mark = tmp_path / "order"
    plans = {
        n: [
            [Step("a/one", f"sleep 0.5; echo {n}-one >> {mark}.{n}; echo out; echo err >&2"),
             Step("a/two", f"echo {n}-two >> {mark}.{n}")],
            [Step("b", f"cat {mark}.{n}; printf 'no newline'")],
        ]
        for n in ("n1", "n2")
    }  # fmt: skip
    t0 = time.monotonic()
    r = fanout.start_job("n[1-2]", "bench", plans, label="demo", stamp=True, settings=s)
    assert r.ok, [(n.name, n.reason) for n in r]
    assert time.monotonic() - t0 < 30  # not waiting for the job itself
    job_id = r["n1"].jobs[0].job_id
    assert r["n1"].jobs[0].state == "running" and r["n1"].jobs[0].stages == 2
    wait_for(lambda: _status(s, "n1", job_id).state == "done", "n1's job done")  # type: ignore[attr-defined]
    st = _status(s, "n1", job_id)
    assert [x.name for x in st.steps][-1] == "b" and st.stage == 2  # type: ignore[attr-defined]
    assert {x.result.state for x in st.steps} == {1}  # type: ignore[attr-defined]
    d = Path(st.dir)  # type: ignore[attr-defined]
    log = (d / "b.log").read_text()
    # b ran after both steps of stage a; every line stamped with its capture time
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 "
    assert re.fullmatch(f"{stamp}n1-(one|two)\n{stamp}n1-(one|two)\n{stamp}no newline", log), log
    assert sorted(re.sub(stamp, "", (d / "a" / "one.log").read_text()).split()) == ["err", "out"]
    doc = json.loads((d / "state.json").read_text())
    assert doc["state"] == "done" and doc["label"] == "demo"
    assert (d / "state.json").stat().st_mode & 0o077 == 0


def test_one_job_of_a_kind_at_a_time_and_stop_kills_it(agents: Agents, tmp_path: Path) -> None:
    s = _settings(agents, 1)
    plans = {"n1": [[Step("long", "sleep 300 & wait")]]}
    first = fanout.start_job("n1", "bench", plans, label="first", settings=s)
    assert first.ok
    job_id = first["n1"].jobs[0].job_id

    def sleeping() -> list[psutil.Process]:
        return [
            p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "300"]
        ]

    wait_for(lambda: len(sleeping()) == 1, "the job's command")
    again = fanout.start_job("n1", "bench", plans, label="second", settings=s)
    assert again["n1"].state == "REFUSED"
    assert f"bench job {job_id} (first) is running here since" in again["n1"].reason
    other = fanout.start_job("n1", "other", {"n1": [[Step("x", "true")]]}, settings=s)
    assert other.ok  # another kind may run beside it
    stopped = fanout.jobs("n1", job_id=job_id, stop=True, settings=s)
    (st,) = stopped["n1"].jobs
    assert st.state == "stopped" and st.reason.startswith("stopped by ")
    wait_for(lambda: not sleeping(), "the job's commands killed")
    gone = fanout.jobs("n1", job_id=job_id, forget=True, settings=s)
    assert gone.ok and not Path(st.dir).exists()
    assert fanout.jobs("n1", job_id=job_id, settings=s)["n1"].state == "REFUSED"


def test_a_job_whose_agent_died_is_lost_not_running(agents: Agents) -> None:
    s = _settings(agents, 1)
    r = fanout.start_job("n1", "bench", {"n1": [[Step("long", "sleep 300")]]}, settings=s)
    job_id = r["n1"].jobs[0].job_id
    agents.started[0].kill()
    agents.started.clear()
    s = _settings(agents, 1)  # the same node, restarted
    st = _status(s, "n1", job_id)
    assert st.state == "lost" and "agent stopped while it ran" in st.reason  # type: ignore[attr-defined]
    assert Path(st.dir, "state.json").stat().st_mode & 0o077 == 0  # type: ignore[attr-defined]
    assert fanout.start_job("n1", "bench", {"n1": [[Step("x", "true")]]}, settings=s).ok


def test_bad_plans_are_refused_with_the_reason(agents: Agents) -> None:
    s = _settings(agents, 1)
    bad = fanout.start_job("n1", "bench", {"n1": [[Step("../up", "true")]]}, settings=s)
    assert bad["n1"].state == "REFUSED" and "without '..'" in bad["n1"].reason
    none = fanout.start_job("n1", "bench", {"n2": [[Step("x", "true")]]}, settings=s)
    assert none["n1"].state == "REFUSED" and "no plan for n1" in none["n1"].reason
