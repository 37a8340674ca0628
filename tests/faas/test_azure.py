from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shoal.errors import UsageError
from shoal.faas.azure import load_trace
from shoal.faas.generate import generate_azure, generate_burst
from shoal.faas.model import TraceError


def test_generated_2019_trace_reads_back_every_count(tmp_path: Path) -> None:
    generate_azure(tmp_path, functions=12, days=2, seed=5)
    t = load_trace(tmp_path)
    total = 0
    for p in sorted(tmp_path.glob("invocations_per_function_md.anon.d*.csv")):
        for line in p.read_text().splitlines()[1:]:
            total += sum(int(x) for x in line.split(",")[4:])
    assert len(t) == total
    assert len(t.functions) == 12
    assert np.all(np.diff(t.times) >= 0) and t.times.max() < 2 * 86400
    assert all(100 <= f.memory_mb <= 1000 for f in t.functions)
    assert (t.durations > 0).all()


def test_generator_is_deterministic_by_seed(tmp_path: Path) -> None:
    a = [p.read_bytes() for p in generate_azure(tmp_path / "a", functions=8, seed=1)]
    b = [p.read_bytes() for p in generate_azure(tmp_path / "b", functions=8, seed=1)]
    c = [p.read_bytes() for p in generate_azure(tmp_path / "c", functions=8, seed=2)]
    assert a == b and a != c


def test_burst_trace_has_the_calls_asked_and_memory(tmp_path: Path) -> None:
    generate_burst(tmp_path, functions=5, calls=1000, seconds=60, seed=3)
    t = load_trace(tmp_path)
    assert len(t) == 1000
    assert {f.memory_mb for f in t.functions} <= {128, 256, 512, 1024, 2048}
    assert t.times.max() < 61


def _inv(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "invocations_per_function_md.anon.d01.csv"
    head = "HashOwner,HashApp,HashFunction,Trigger," + ",".join(str(i) for i in range(1, 1441))
    p.write_text(head + "\n" + text)
    return p


def test_a_bad_count_names_line_and_column(tmp_path: Path) -> None:
    counts = ["0"] * 1440
    counts[9] = "x"
    p = _inv(tmp_path, "o,a,f,http," + ",".join(counts) + "\n")
    with pytest.raises(TraceError, match=r"line 2, column 14: expected an integer, got 'x'"):
        load_trace(p)


def test_a_short_row_names_line_and_column(tmp_path: Path) -> None:
    p = _inv(tmp_path, "o,a,f,http," + ",".join(["1"] * 1440) + "\no,a,g,http,1,2\n")
    with pytest.raises(TraceError, match=r"line 3, column 7: 6 fields, expected 1444"):
        load_trace(p)


def test_a_wrong_header_is_a_usage_error(tmp_path: Path) -> None:
    p = tmp_path / "calls.csv"
    p.write_text("app,func,end,duration\n")
    with pytest.raises(UsageError, match=r"line 1, column 3: expected header 'end_timestamp'"):
        load_trace(p)


def test_2021_format_negative_duration(tmp_path: Path) -> None:
    p = tmp_path / "calls.csv"
    p.write_text("app,func,end_timestamp,duration\na,f,10.0,1.5\na,f,11.0,-1\n")
    with pytest.raises(TraceError, match=r"line 3, column 4: expected a non-negative"):
        load_trace(p)
