"""Failover, capacity, shared state, keys and config errors with real processes."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from procs import API, Proc, control, start_backend, start_gateway, write_config

PY = {"language_id": "python3", "sourcecode": "print('ok')"}


def run(gw: Proc, spec: dict[str, object] = PY, **kw: object) -> httpx.Response:
    return httpx.post(gw.url + API + "/runs", json={"run_spec": spec}, timeout=60, **kw)  # type: ignore[arg-type]


def gw_conf(tmp: Path, backends: list[Proc], extra: str = "", **b: object) -> Path:
    head = f'[gateway]\nfiles_dir = "{tmp / "files"}"\nhealth_interval = 0.3\n' + extra
    return write_config(tmp / "gw.toml", [{"url": x.url, **b} for x in backends], head)


def test_backend_killed_under_load_loses_no_run(tmp_path: Path) -> None:
    bs = [start_backend(tmp_path, slots=4, delay=0.05) for _ in range(3)]
    g = start_gateway(gw_conf(tmp_path, bs, capacity=4), "--quiet")
    try:
        spec = {"language_id": "python3", "sourcecode": "print(6*7)"}

        def one(i: int) -> int:
            if i == 20:
                bs[0].kill()
            r = run(g, spec)
            return r.json()["outcome"] if r.status_code == 200 else r.status_code

        with ThreadPoolExecutor(8) as ex:
            outcomes = list(ex.map(one, range(80)))
        assert outcomes == [15] * 80
        st = httpx.get(g.url + "/shoal/status").json()["backends"]
        assert [b["live"] for b in st] == [False, True, True]
    finally:
        g.stop()
        for b in bs:
            b.stop()


def test_failing_backend_5xx_is_retried_and_ejected(tmp_path: Path) -> None:
    bs = [start_backend(tmp_path) for _ in range(2)]
    g = start_gateway(gw_conf(tmp_path, bs), "--quiet", "--balance", "round-robin")
    try:
        control(bs[0], fail=True)
        assert [run(g).json()["outcome"] for _ in range(10)] == [15] * 10
        m = httpx.get(g.url + "/metrics").text
        assert 'shoal_gateway_retries_total{reason="5xx"}' in m
        assert httpx.get(g.url + "/shoal/status").json()["backends"][0]["live"] is False
        control(bs[0], fail=False)
        deadline = time.monotonic() + 30  # re-admitted after eject_for by a good check
        while not httpx.get(g.url + "/shoal/status").json()["backends"][0]["live"]:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        g.stop()
        for b in bs:
            b.stop()


def test_floor_keeps_last_backend(tmp_path: Path) -> None:
    bs = [start_backend(tmp_path)]
    g = start_gateway(gw_conf(tmp_path, bs), "--quiet")
    try:
        control(bs[0], fail=True)
        for _ in range(5):
            run(g)
        assert httpx.get(g.url + "/shoal/status").json()["backends"][0]["live"] is True
    finally:
        g.stop()
        bs[0].stop()


def test_capacity_queue_timeout_answers_21_and_backend_overload_is_retried(
    tmp_path: Path,
) -> None:
    # one slot at the gateway, a slow run holds it: the second waits 0.5 s and gets 21
    bs = [start_backend(tmp_path, slots=1, wait=0.2, delay=3.0)]
    g = start_gateway(gw_conf(tmp_path, bs, "queue_timeout = 0.5\n", capacity=1), "--quiet")
    try:
        with ThreadPoolExecutor(2) as ex:
            first = ex.submit(run, g)
            time.sleep(1.0)
            second = run(g)
            assert second.json() == {
                "run_id": "0",
                "outcome": 21,
                "cmpinfo": "",
                "stdout": "",
                "stderr": "",
            }
            assert first.result().json()["outcome"] == 15
        assert "shoal_gateway_queue_depth 0.0" in httpx.get(g.url + "/metrics").text
    finally:
        g.stop()
        bs[0].stop()


def test_job_affinity_keeps_one_backend(tmp_path: Path) -> None:
    bs = [start_backend(tmp_path) for _ in range(3)]
    g = start_gateway(gw_conf(tmp_path, bs), "--quiet", "--balance", "round-robin")
    try:
        for _ in range(6):
            assert run(g, headers={"X-CodeRunner-Job-Id": "job7"}).json()["outcome"] == 15
        runs = sorted(int(str(control(b)["runs"])) for b in bs)
        assert runs == [0, 0, 6]
    finally:
        g.stop()
        for b in bs:
            b.stop()


def test_api_keys_403_and_429(tmp_path: Path) -> None:
    bs = [start_backend(tmp_path)]
    cfg = gw_conf(tmp_path, bs)
    cfg.write_text(cfg.read_text() + '[[key]]\nkey = "k1"\nruns_per_hour = 2\n')
    g = start_gateway(cfg, "--quiet")
    try:
        assert run(g).status_code == 403
        assert run(g, headers={"X-API-KEY": "nope"}).status_code == 403
        ok = {"X-API-KEY": "k1"}
        assert [run(g, headers=ok).status_code for _ in range(3)] == [200, 200, 429]
    finally:
        g.stop()
        bs[0].stop()


def test_two_gateways_share_redis(tmp_path: Path, redis_url: str) -> None:
    import os

    prefix = os.environ["SHOAL_TEST_REDIS_PREFIX"] + ":"
    bs = [start_backend(tmp_path) for _ in range(2)]
    cfg = gw_conf(tmp_path, bs, f'redis_prefix = "{prefix}"\n')
    cfg.write_text(cfg.read_text() + '[[key]]\nkey = "k1"\nruns_per_hour = 3\n')
    g1 = start_gateway(cfg, "--quiet", "--redis", redis_url)
    # its own files_dir: what g2 knows of g1's files comes through Redis
    env = {"SHOAL_GATEWAY_FILES_DIR": str(tmp_path / "files2")}
    g2 = start_gateway(cfg, "--quiet", "--redis", redis_url, env=env)
    try:
        h = {"X-API-KEY": "k1"}
        body = {"file_contents": base64.b64encode(b"shared\n").decode()}
        assert (
            httpx.put(g1.url + API + "/files/sharedfile1", json=body, headers=h).status_code == 204
        )
        assert httpx.head(g2.url + API + "/files/sharedfile1", headers=h).status_code == 204
        spec = {
            "language_id": "python3",
            "sourcecode": "print(open('s').read().strip())",
            "file_list": [["sharedfile1", "s"]],
        }
        r = run(g2, spec, headers=h)
        assert r.json()["stdout"] == "shared\n"
        # the limit of 3 runs/hour is shared: 1 used via g2, 2 more anywhere, then 429
        assert run(g1, headers=h).status_code == 200
        assert run(g2, headers=h).status_code == 200
        assert run(g1, headers=h).status_code == 429
    finally:
        g1.stop()
        g2.stop()
        for b in bs:
            b.stop()


def test_gateways_sharing_redis_share_a_backends_slots(tmp_path: Path, redis_url: str) -> None:
    """Two gateways, one backend of 2 slots: together they never run more than 2."""
    import os

    prefix = os.environ["SHOAL_TEST_REDIS_PREFIX"] + ":slots:"
    b = start_backend(tmp_path, slots=2, wait=0.2, delay=1.0)
    cfg = gw_conf(tmp_path, [b], f'redis_prefix = "{prefix}"\nqueue_timeout = 60\n', capacity=2)
    started = [b]
    try:
        g1 = start_gateway(cfg, "--quiet", "--redis", redis_url)
        started.append(g1)
        g2 = start_gateway(cfg, "--quiet", "--redis", redis_url)
        started.append(g2)
        deadline = time.monotonic() + 30
        while not all(httpx.get(g.url + "/shoal/status").json()["gateways"] == 2 for g in (g1, g2)):
            assert time.monotonic() < deadline, "gateways never saw each other"
            time.sleep(0.2)
        assert httpx.get(g1.url + "/shoal/status").json()["backends"][0]["capacity_here"] == 1
        with ThreadPoolExecutor(6) as ex:
            outcomes = list(ex.map(lambda i: run((g1, g2)[i % 2]).json()["outcome"], range(6)))
        assert outcomes == [15] * 6  # queued at the gateways, none overloaded at the Jobe
        assert control(b)["max_busy"] == 2
        g2.stop()  # a gateway leaves: the other takes all the slots again
        deadline = time.monotonic() + 30
        while httpx.get(g1.url + "/shoal/status").json()["gateways"] != 1:
            assert time.monotonic() < deadline, "the departed gateway is still counted"
            time.sleep(0.2)
        assert httpx.get(g1.url + "/shoal/status").json()["backends"][0]["capacity_here"] == 2
    finally:
        for p in started:
            p.stop()


def shoal(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shoal.cli.main", *args], capture_output=True, text=True, timeout=60
    )


def test_config_errors_are_one_line_exit_5(tmp_path: Path) -> None:
    cases = {
        "missing.toml": None,
        "bad.toml": "[[backend]\nurl=",
        "empty.toml": "[gateway]\n",
        "noscheme.toml": '[[backend]]\nurl = "localhost:1"\n',
        "badcap.toml": '[[backend]]\nurl = "http://x"\ncapacity = 0\n',
        "badbal.toml": '[gateway]\nbalance = "fastest"\n[[backend]]\nurl = "http://x"\n',
        "badfiles.toml": '[gateway]\nfiles_dir = "/proc/no/files"\n[[backend]]\nurl = "http://x"\n',
    }
    for name, text in cases.items():
        p = tmp_path / name
        if text is not None:
            p.write_text(text)
        r = shoal("gateway", "serve", "--config", str(p))
        assert r.returncode == 5, (name, r.stderr)
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("shoal: error:"), r.stderr


def test_status_command_prints_backends(gateway: Proc, two_backends: list[Proc]) -> None:
    r = shoal("gateway", "status", "--url", gateway.url)
    assert r.returncode == 0
    for b in two_backends:
        assert b.url in r.stdout
    assert "live" in r.stdout
    r = shoal("gateway", "status", "--url", "http://127.0.0.1:9")
    assert r.returncode == 6 and r.stderr.startswith("shoal: error:")


def test_default_balancer_keeps_runs_off_a_slow_backend(tmp_path: Path) -> None:
    """Three backends, one 5x slower; 4 clients at a time fit in the fast ones'
    slots, so after the first runs have measured each backend the slow one is
    left alone. Random and least-outstanding would keep sending it a share."""
    bs = [start_backend(tmp_path, slots=4, delay=0.1, echo=True) for _ in range(3)]
    g = start_gateway(gw_conf(tmp_path, bs, capacity=4), "--quiet")
    try:
        control(bs[2], slow=5)
        with ThreadPoolExecutor(4) as ex:
            outcomes = list(ex.map(lambda _: run(g).json()["outcome"], range(80)))
        assert outcomes == [15] * 80
        st = httpx.get(g.url + "/shoal/status").json()["backends"]
        assert st[2]["latency_ms"] > 2 * max(st[0]["latency_ms"], st[1]["latency_ms"])
        assert st[2]["runs"] <= 4, [b["runs"] for b in st]  # its first measurements only
    finally:
        g.stop()
        for b in bs:
            b.stop()


def test_waiting_runs_are_served_in_arrival_order(tmp_path: Path) -> None:
    """One slot, runs arriving faster than it frees: they queue at the gateway
    and are served first come, first served (no newcomer jumps the line).
    Each run is sent once the gateway has the one before (queued or taken), so
    the arrival order is known whatever the machine's load."""
    import threading

    bs = [start_backend(tmp_path, slots=4, delay=0.6, echo=True)]
    g = start_gateway(gw_conf(tmp_path, bs, "queue_timeout = 60\n", capacity=1), "--quiet")
    done: list[int] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        assert run(g).json()["outcome"] == 15
        with lock:
            done.append(i)

    most_queued = 0

    def received() -> int:
        nonlocal most_queued
        st = httpx.get(g.url + "/shoal/status").json()
        most_queued = max(most_queued, int(st["queued"]))
        return int(st["queued"]) + int(st["backends"][0]["runs"])

    try:
        with ThreadPoolExecutor(8) as ex:
            futures = []
            for i in range(8):
                futures.append(ex.submit(one, i))
                deadline = time.monotonic() + 30
                while received() < i + 1:
                    assert time.monotonic() < deadline, f"run {i} never reached the gateway"
                    time.sleep(0.005)
            for f in futures:
                f.result()
        assert most_queued >= 2  # a line there was
        assert done == list(range(8))
    finally:
        g.stop()
        for b in bs:
            b.stop()


def test_a_port_in_use_is_one_line_exit_5_and_creates_nothing(tmp_path: Path) -> None:
    import socket

    files = tmp_path / "files"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        conf = tmp_path / "gw.toml"
        conf.write_text(
            f'[gateway]\nlisten = "127.0.0.1:{port}"\nfiles_dir = "{files}"\n'
            '[[backend]]\nurl = "http://127.0.0.1:9"\n'
        )
        r = shoal("gateway", "serve", "--config", str(conf))
    assert r.returncode == 5, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"shoal: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    assert not files.exists()
