"""`shoal bench parse` then `shoal bench report` end to end on the logs of
examples/benchy_like.py, run for real; bad input is one line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from agentproc import shoal

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "benchy_like.py"
CAMPAIGN = ROOT / "examples" / "benchy-campaign.toml"


def benchy(out: Path, *args: str) -> None:
    with out.open("w") as f:
        subprocess.run(
            [sys.executable, str(EXAMPLE), "--work", "1", "--utc", *args],
            stdout=f, stderr=subprocess.DEVNULL, timeout=120, check=False,
        )  # fmt: skip


def test_parse_then_report_on_the_example_benchmarks_logs(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for rep in (1, 2, 3):
        for threads in (1, 2):
            benchy(logs / f"benchy-{threads}cpu-{rep}.log", "--threads", str(threads),
                   "--cache-dir", str(tmp_path / "cache"))  # fmt: skip
    benchy(logs / "benchy-2cpu-4.log", "--fail-in", "p2", "--cache-dir", str(tmp_path / "c"))
    res = tmp_path / "res"
    cp = shoal("bench", "parse", str(logs / "*.log"), "--phases", str(CAMPAIGN),
               "--group", r"benchy-(?P<layout>\d+cpu)-(?P<rep>\d+)", "-o", str(res))  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.startswith("7 log(s): 13 complete run(s), 1 incomplete, 6 metric value(s)")
    runs = json.loads((res / "runs.json").read_text())["runs"]
    (bad,) = [r for r in runs if r["status"] == "incomplete"]
    assert (bad["phase"], bad["group"]["rep"], bad["seconds"]) == ("p2", "4", None)
    for name in ("report.md", "summary.csv", "p1-by-layout.png", "p2-throughput.png"):
        assert (res / name).stat().st_size > 0
    assert "phase p1: layout" in cp.stdout
    other = tmp_path / "again"
    cp = shoal("bench", "report", str(res), "--compare", str(res), "-o", str(other), "--no-plots")
    assert cp.returncode == 0, cp.stderr
    assert "change against benchy-like" in cp.stdout
    changes = (other / "changes.csv").read_text().splitlines()
    assert len(changes) == 1 + 6 and all(",0.0," in ln for ln in changes[1:])


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text("[[phases]]\nname = 'p2'\nstart = '(oops'\nend = 'x'\n")
    (tmp_path / "a.log").write_text("x\n")
    cases = [
        (["parse", str(tmp_path / "a.log"), "--phases", str(bad)],
         f"shoal: error: {bad}: phases[0]: phase p2: start pattern '(oops' does not compile"),
        (["parse", str(tmp_path / "none-*.log"), "--phases", str(CAMPAIGN)],
         f"shoal: error: no log file matches '{tmp_path / 'none-*.log'}'"),
        (["report", str(tmp_path / "nowhere")],
         f"shoal: error: results {tmp_path / 'nowhere'}: cannot read them"),
        (["plan", str(tmp_path / "missing.toml")],
         f"shoal: error: campaign {tmp_path / 'missing.toml'}: cannot read it"),
    ]  # fmt: skip
    for args, message in cases:
        cp = shoal("bench", *args)
        assert cp.returncode == 2, (args, cp.stderr)
        assert len(cp.stderr.splitlines()) == 1 and cp.stderr.startswith(message), cp.stderr
        assert "Traceback" not in cp.stderr
