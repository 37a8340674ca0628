"""Seeded synthetic traces: Azure 2019 files from distributions like the
published ones (Shahrad et al. ATC'20), and mini-faas-like bursts in the 2021
per-invocation format."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from statistics import NormalDist

import numpy as np

from shoal.faas.azure import (
    DUR_HEADER,
    DUR_PCT,
    INV_HEADER,
    MEM_HEADER,
    MEM_PCT,
    MINUTES,
    NEW_HEADER,
)

PERIODS = [1, 5, 10, 15, 30, 60, 120, 240, 720, 1440]  # timer periods, minutes


def _hash(rng: np.random.Generator) -> str:
    return hashlib.sha256(rng.bytes(16)).hexdigest()


def _pct(p: str) -> float:
    return min(max(float(p) / 100.0, 0.001), 0.999)


def generate_azure(out: Path, *, functions: int = 200, days: int = 1, seed: int = 0) -> list[Path]:
    """Write invocations, duration and memory files for ``days`` days."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    norm = NormalDist()
    owners: list[str] = []
    apps: list[str] = []
    fids: list[str] = []
    triggers: list[str] = []
    while len(fids) < functions:  # apps of 1-5 functions (most have one)
        owner, app = _hash(rng), _hash(rng)
        for _ in range(min(int(rng.geometric(0.6)), 5, functions - len(fids))):
            owners.append(owner)
            apps.append(app)
            fids.append(_hash(rng))
            triggers.append(
                "timer" if rng.random() < 0.3 else str(rng.choice(["http", "queue", "event"]))
            )
    # heavy-tailed daily rates: a median near 50 a day, a few near one a second
    daily = np.clip(10 ** rng.normal(1.7, 1.1, functions), 1, 60_000)
    period = rng.choice(PERIODS, functions)
    phase = rng.uniform(0, 2 * np.pi, functions)
    offset = rng.integers(0, 1440, functions)
    mu = np.log(rng.lognormal(np.log(0.4), 1.2, functions))  # median duration, s
    sigma = rng.uniform(0.2, 1.0, functions)
    app_ids = sorted(set(apps))
    app_mem = {a: float(np.clip(rng.lognormal(np.log(220), 0.55), 100, 1000)) for a in app_ids}
    minute = np.arange(MINUTES * days)
    paths = []
    for d in range(days):
        tag = f"d{d + 1:02d}"
        p = out / f"invocations_per_function_md.anon.{tag}.csv"
        with p.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(INV_HEADER)
            m = minute[d * MINUTES : (d + 1) * MINUTES]
            for i in range(functions):
                if triggers[i] == "timer":
                    counts = ((m + offset[i]) % period[i] == 0).astype(np.int64)
                else:
                    diurnal = 1 + 0.6 * np.sin(2 * np.pi * m / MINUTES + phase[i])
                    counts = rng.poisson(daily[i] / MINUTES * diurnal)
                w.writerow([owners[i], apps[i], fids[i], triggers[i], *counts.tolist()])
        paths.append(p)
        p = out / f"function_durations_percentiles.anon.{tag}.csv"
        with p.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(DUR_HEADER)
            for i in range(functions):
                ms = [
                    1000 * float(np.exp(mu[i] + sigma[i] * norm.inv_cdf(_pct(q)))) for q in DUR_PCT
                ]
                avg = 1000 * float(np.exp(mu[i] + sigma[i] ** 2 / 2))
                lo, hi = f"{ms[0]:.3f}", f"{ms[-1]:.3f}"
                head = [owners[i], apps[i], fids[i], f"{avg:.3f}", int(daily[i]), lo, hi]
                w.writerow(head + [f"{v:.3f}" for v in ms])
        paths.append(p)
        p = out / f"app_memory_percentiles.anon.{tag}.csv"
        with p.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(MEM_HEADER)
            for a in app_ids:
                owner = owners[apps.index(a)]
                base = app_mem[a]
                pcts = [base * (0.7 + 0.6 * float(q) / 100) for q in MEM_PCT]
                w.writerow([owner, a, 1440, f"{base:.1f}", *(f"{v:.1f}" for v in pcts)])
        paths.append(p)
    return paths


def generate_burst(
    out: Path, *, functions: int = 20, calls: int = 73_300, seconds: float = 1200.0, seed: int = 0
) -> list[Path]:
    """mini-faas-like: a round every 200-800 ms, each a burst of one function,
    ``calls`` in all; an app memory file beside it gives each function's memory."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    rounds = []
    t = 0.0
    while t < seconds:
        rounds.append(t)
        t += float(rng.uniform(0.2, 0.8))
    weight = rng.lognormal(0, 1, functions)
    who = rng.choice(functions, len(rounds), p=weight / weight.sum())
    share = rng.lognormal(0, 0.7, len(rounds))
    size = rng.multinomial(calls, share / share.sum())
    median = rng.lognormal(np.log(0.15), 1.0, functions)
    memory = rng.choice([128, 256, 512, 1024, 2048], functions, p=[0.3, 0.3, 0.2, 0.15, 0.05])
    names = [f"fn{i:02d}" for i in range(functions)]
    p = out / "invocations.csv"
    rows: list[tuple[str, str, float, float]] = []
    for start, f, n in zip(rounds, who, size, strict=True):
        arrive = start + np.sort(rng.uniform(0, 0.05, n))  # a burst: within 50 ms
        dur = rng.lognormal(np.log(median[f]), 0.4, n)
        rows.extend((names[f], names[f], a + d, d) for a, d in zip(arrive, dur, strict=True))
    with p.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(NEW_HEADER)
        w.writerows((a, b, f"{e:.6f}", f"{d:.6f}") for a, b, e, d in rows)
    m = out / "app_memory_percentiles.anon.d01.csv"
    with m.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(MEM_HEADER)
        for name, mb in zip(names, memory, strict=True):
            w.writerow(["owner", name, 1, mb, *([mb] * len(MEM_PCT))])
    return [p, m]
