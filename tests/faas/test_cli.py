from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SHOAL = [sys.executable, "-m", "shoal.cli.main", "faas"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SHOAL, *args], capture_output=True, text=True, timeout=120)


def test_generate_simulate_oracle(tmp_path: Path) -> None:
    g = _run("trace", "generate", "--out", str(tmp_path), "--functions", "6", "--seed", "1")
    assert g.returncode == 0, g.stderr
    assert "invocations_per_function_md.anon.d01.csv" in g.stdout
    s = _run("simulate", "--trace", str(tmp_path), "--policy", "shoal", "--json")
    assert s.returncode == 0, s.stderr
    out = json.loads(s.stdout)
    assert out["policy"] == "shoal" and out["errors"] == 0 and out["score"] > 0
    o = _run("oracle", "--trace", str(tmp_path), "--json")
    assert o.returncode == 0 and json.loads(o.stdout)["cold"] == 0
    t = _run("simulate", "--trace", str(tmp_path), "--policy", "hybrid")
    assert t.returncode == 0 and "cold_ratio" in t.stdout


def test_burst_generate(tmp_path: Path) -> None:
    g = _run(
        "trace", "generate", "--out", str(tmp_path), "--burst", "--functions", "3", "--calls", "200"
    )
    assert g.returncode == 0, g.stderr
    assert len((tmp_path / "invocations.csv").read_text().splitlines()) == 201
    one, shared = (
        json.loads(
            _run("simulate", "--trace", str(tmp_path), "--policy", "shoal", "--json",
                 "--max-calls", n).stdout
        )
        for n in ("1", "8")
    )  # fmt: skip
    assert shared["calls"] == one["calls"] == 200 and shared["errors"] == 0
    assert shared["cold"] < one["cold"]  # bursts share the containers they find
    r = _run("simulate", "--trace", str(tmp_path), "--policy", "shoal", "--max-calls", "0")
    assert r.returncode == 2 and "--max-calls must be in [1, 64]" in r.stderr


def test_bad_input_is_one_line_and_an_exit_code(tmp_path: Path) -> None:
    bad = tmp_path / "x.csv"
    bad.write_text("app,func,end_timestamp,duration\na,f,zz,1\n")
    r = _run("simulate", "--trace", str(bad), "--policy", "shoal")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "line 2, column 3" in r.stderr
    assert "Traceback" not in r.stderr
    r = _run("simulate", "--trace", str(bad), "--policy", "nope")
    assert r.returncode == 2 and "unknown policy 'nope'" in r.stderr
    r = _run("oracle", "--trace", str(tmp_path / "missing"))
    assert r.returncode == 2 and "no such file" in r.stderr
