"""`shoal bench run`, synchronous: a real campaign of the example benchmark on
a real agent, each slot in a real cpuset sandbox (root, cgroups), its log
parsed and reported; a failing preflight starts nothing."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
from agentproc import Agents, shoal

from shoal.agent.cgroups import Host

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "benchy_like.py"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or Host.detect().version == 0, reason="sandboxes need root and cgroups"
)


BENCHY = f"{sys.executable} {EXAMPLE} --threads {{threads}} --work 1 --utc --cache-dir {{scratch}}"


def campaign(tmp_path: Path, extra: str = "") -> Path:
    f = tmp_path / "c.toml"
    f.write_text(
        f"""
nodes = "n1"
repetitions = 2
warmups = 1
time_limit = "2m"
[[layouts]]
name = "one"
slots = 1
[[layouts]]
name = "two"
slots = 2
span_numa = true
[command]
run = "grep Cpus_allowed_list /proc/self/status; echo scratch=$TMPDIR; {BENCHY}"
env = {{ SLOT = "{{slot}}" }}
memory = "256MiB + {{threads}} * 64MiB"
[scratch]
dir = "{tmp_path / "scratch"}"
free = "1MiB"
[parse]
timestamp = "%Y-%m-%d %H:%M:%S.%f"
[[phases]]
name = "p1"
start = 'seal_pre_commit_phase1: start'
end = 'seal_pre_commit_phase1: finish'
{extra}
"""
    )
    return f


def test_a_campaign_runs_every_slot_in_its_cpuset_and_reports(
    agents: Agents, tmp_path: Path
) -> None:
    agents.start("n1")
    agents.inventory()
    (tmp_path / "scratch").mkdir()
    out = tmp_path / "res"
    cp = shoal("bench", "run", str(campaign(tmp_path)), "-o", str(out), "--no-plots")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.startswith("9 slot run(s): PASS 9")  # (1 warm-up + 2 reps) x (1 + 2 slots)
    meta = json.loads((out / "campaign.json").read_text())
    two = next(p for p in meta["plans"] if p["layout"] == "two")["slots"]
    one = next(p for p in meta["plans"] if p["layout"] == "one")["slots"][0]
    log = (out / "logs" / "n1" / "one-r2-s0.log").read_text()
    assert f"Cpus_allowed_list:\t{one['cpu_list']}" in log
    for slot in two:
        log = (out / "logs" / "n1" / f"two-r1-s{slot['index']}.log").read_text()
        assert f"Cpus_allowed_list:\t{slot['cpu_list']}" in log
        assert f"scratch={tmp_path / 'scratch'}/shoal-scratch-" in log
    assert sorted(p.name for p in (out / "warmup" / "n1").iterdir()) == [
        "one-r1-s0.log", "two-r1-s0.log", "two-r1-s1.log",
    ]  # fmt: skip
    runs = json.loads((out / "runs.json").read_text())
    assert sorted((r["group"]["layout"], r["status"]) for r in runs["runs"]) == [
        ("one", "complete")] * 2 + [("two", "complete")] * 4  # fmt: skip
    assert runs["slots"] == {"one": 1, "two": 2}
    assert list((tmp_path / "scratch").iterdir()) == []  # every slot's scratch went away
    freed = json.loads((out / "campaign.json").read_text())["scratch_freed"]
    assert freed > 0 and "; scratch freed: " in cp.stdout.splitlines()[0]
    assert (out / "report.md").exists()


def test_a_failing_preflight_starts_nothing(agents: Agents, tmp_path: Path) -> None:
    agents.start("n1")
    agents.inventory()
    out = tmp_path / "res"
    cp = shoal("bench", "run", str(campaign(tmp_path)), "-o", str(out))  # no scratch dir
    assert cp.returncode == 2
    assert cp.stderr.startswith("shoal: error: preflight failed, nothing started: n1: scratch:")
    assert not out.exists()


def test_an_oom_in_one_slot_is_recorded_and_the_others_go_on(
    agents: Agents, tmp_path: Path
) -> None:
    agents.start("n1")
    agents.inventory()
    (tmp_path / "scratch").mkdir()
    f = tmp_path / "oom.toml"
    hog = f"{sys.executable} -c 'x = bytearray(600 << 20)'"
    f.write_text(
        campaign(tmp_path)
        .read_text()
        .replace("repetitions = 2\nwarmups = 1", "repetitions = 1")
        .replace('[[layouts]]\nname = "one"\nslots = 1\n', "")
        .replace('memory = "256MiB + {threads} * 64MiB"', 'memory = "200MiB"')
        .replace('run = "', f'run = "if [ {{slot}} = 1 ]; then {hog}; exit 1; fi; ')
    )
    out = tmp_path / "res"
    cp = shoal("bench", "run", str(f), "-o", str(out), "--no-plots")
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.startswith("2 slot run(s): OOM 1, PASS 1")
    slots = json.loads((out / "campaign.json").read_text())["slots"]
    (oom,) = [s for s in slots if s["state"] == "OOM"]
    assert oom["slot"] == 1 and oom["peak_memory"] > 100 << 20
    assert "warning: n1 two rep 1 slot 1: OOM" in cp.stderr
    runs = json.loads((out / "runs.json").read_text())["runs"]
    assert [(r["group"]["slot"], r["status"]) for r in runs] == [("0", "complete")]


def _slow(tmp_path: Path, seconds: int = 300) -> Path:
    """A campaign whose first slot run takes `seconds` (to look at it running)."""
    f = tmp_path / "slow.toml"
    f.write_text(
        campaign(tmp_path)
        .read_text()
        .replace('run = "', f'run = "[ {{rep}} = 1 ] && [ {{layout}} = one ] && sleep {seconds}; ')
    )
    return f


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_the_campaign_goes_on_when_the_client_is_killed_or_interrupted(
    agents: Agents, tmp_path: Path, how: str
) -> None:
    import signal
    import subprocess
    import time

    agents.start("n1")
    agents.inventory()
    (tmp_path / "scratch").mkdir()
    out = tmp_path / "res"
    p = subprocess.Popen(
        [sys.executable, "-m", "shoal.cli.main", "bench", "run", str(_slow(tmp_path, 4)),
         "-o", str(out), "--no-plots"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (out / "campaign.json").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)  # started on the host by now
    p.send_signal(getattr(signal, how))  # the terminal dropped, or Ctrl-C
    _, err = p.communicate(timeout=30)
    if how == "SIGINT":
        assert p.returncode == 130, err
        assert "detached; the campaign goes on: shoal bench status" in err, err
    cp = shoal("bench", "status", str(out))
    assert cp.returncode == 0, cp.stderr
    assert "running" in cp.stdout or "slot run(s)" in cp.stdout
    cp = shoal("bench", "status", str(out), "--wait", "--no-plots")
    assert cp.returncode == 0, cp.stderr
    assert "9 slot run(s): PASS 9" in cp.stdout
    assert len(list((out / "logs" / "n1").iterdir())) == 6
    assert json.loads((out / "runs.json").read_text())["slots"] == {"one": 1, "two": 2}
    assert list((tmp_path / "scratch").iterdir()) == []


def test_started_twice_on_the_same_hosts_the_second_starts_nowhere(
    agents: Agents, tmp_path: Path
) -> None:
    agents.start("n1")
    agents.inventory()
    (tmp_path / "scratch").mkdir()
    first = shoal("bench", "run", "-d", str(_slow(tmp_path)), "-o", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    assert "started on 1 host(s)" in first.stderr
    second = shoal("bench", "run", str(_slow(tmp_path)), "-o", str(tmp_path / "b"))
    assert second.returncode == 2
    assert "started nowhere: n1: refused: bench job bench-" in second.stderr
    assert "is running here since" in second.stderr
    assert not (tmp_path / "b" / "campaign.json").exists()
    stop = shoal("bench", "stop", str(tmp_path / "a"), "--no-plots")
    assert stop.returncode == 0, stop.stderr
    assert "stopped by" in stop.stdout and "slot run(s)" in stop.stdout
    assert list((tmp_path / "scratch").iterdir()) == []  # the killed slot's scratch too
    gc = shoal("bench", "gc", "-w", "n1")
    assert gc.returncode == 0 and gc.stdout.startswith("removed 1 ended campaign(s)"), gc.stdout
    again = shoal("bench", "status", str(tmp_path / "a"))
    assert "no job" in again.stdout + again.stderr


def test_a_host_that_dies_is_reported_and_the_campaign_finishes_on_the_rest(
    agents: Agents, tmp_path: Path
) -> None:
    agents.start("n1")
    agents.start("n2")
    agents.inventory()
    (tmp_path / "scratch").mkdir()
    f = _slow(tmp_path, 3)
    f.write_text(f.read_text().replace('nodes = "n1"', 'nodes = "n[1-2]"'))
    out = tmp_path / "res"
    assert shoal("bench", "run", "-d", str(f), "-o", str(out)).returncode == 0
    agents.started[1].kill()
    cp = shoal("bench", "status", str(out), "--wait", "--no-plots")
    assert cp.returncode == 0, cp.stderr
    assert "9 slot run(s): PASS 9" in cp.stdout  # n1's
    assert "warning: n2: no logs collected (UNREACHABLE" in cp.stderr
    assert sorted(p.name for p in (out / "logs").iterdir()) == ["n1"]


def test_capture_stamps_time_phases_of_a_tool_that_prints_no_time(
    agents: Agents, tmp_path: Path
) -> None:
    agents.start("n1")
    agents.inventory()
    (tmp_path / "scratch").mkdir()
    f = tmp_path / "capture.toml"
    f.write_text(
        campaign(tmp_path)
        .read_text()
        .replace("repetitions = 2\nwarmups = 1", "repetitions = 1")
        .replace('timestamp = "%Y-%m-%d %H:%M:%S.%f"', 'timestamp = "capture"')
        .replace(
            BENCHY,
            "echo seal_pre_commit_phase1: start; sleep 1; echo seal_pre_commit_phase1: finish",
        )
    )
    out = tmp_path / "res"
    cp = shoal("bench", "run", str(f), "-o", str(out), "--no-plots")
    assert cp.returncode == 0, cp.stderr
    log = (out / "logs" / "n1" / "one-r1-s0.log").read_text().splitlines()
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 ", x) for x in log), log
    runs = json.loads((out / "runs.json").read_text())["runs"]
    assert {r["status"] for r in runs} == {"complete"} and len(runs) == 3
    from datetime import datetime

    for r in runs:  # each phase's length is the gap between the agent's two stamps
        start, end = (datetime.fromisoformat(x.split()[0])
                      for x in Path(r["file"]).read_text().splitlines()[-2:])  # fmt: skip
        assert r["seconds"] == pytest.approx((end - start).total_seconds(), abs=1e-3), r
