"""Redis away (issue #10, item 14), with a redis-server of the test's own that
it kills and starts again: at start the gateway says so and exits 6; while
running it goes on alone (rate limits, files), says so once, and resumes
sharing when Redis is back, handing back what it took meanwhile."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from procs import API, free_port, start_backend, start_gateway, write_config

OP = "op-key-5b2c"
KEY = "moodle-k-77aa10"


class RedisServer:
    def __init__(self, tmp: Path) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            msg = "redis-server is not installed"
            if os.environ.get("CI") == "true":
                pytest.fail(f"{msg} (CI=true: a needed service must not be skipped)")
            pytest.skip(msg)
        self.exe = exe
        self.dir = tmp
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.p: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.dir)]
        self.p = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        import redis

        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis.from_url(self.url, socket_timeout=1).ping()
                return
            except redis.RedisError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        if self.p is not None and self.p.poll() is None:
            self.p.kill()
            self.p.wait()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    r = RedisServer(tmp_path)
    yield r
    r.kill()


def shoal(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shoal.cli.main", *args], capture_output=True, text=True, timeout=60
    )


def test_unreachable_redis_at_start_is_one_line_exit_6(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "gw.toml", [{"url": "http://127.0.0.1:9"}])
    port = free_port()  # nothing listens there
    for url in (f"redis://127.0.0.1:{port}/0", f"redis://:hunter2pw@127.0.0.1:{port}/0"):
        r = shoal("gateway", "serve", "--config", str(cfg), "--redis", url)
        assert r.returncode == 6, r.stderr
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("shoal: error: Redis at"), r.stderr
        assert "cannot be reached" in r.stderr and "hunter2pw" not in r.stderr
    r = shoal("gateway", "serve", "--config", str(cfg), "--redis", "redis://h:notaport/0")
    assert r.returncode == 5 and r.stderr.count("\n") == 1, r.stderr  # a config mistake


def status(url: str) -> dict[str, object]:
    return dict(httpx.get(url + "/shoal/status", headers={"X-API-KEY": OP}).json())


def test_redis_going_away_and_back(tmp_path: Path, own_redis: RedisServer) -> None:
    import redis

    own_redis.start()
    b = start_backend(tmp_path)
    head = f'[gateway]\nfiles_dir = "{tmp_path / "files"}"\nhealth_interval = 0.3\n'
    head += f'operator_key = "{OP}"\nredis_prefix = "t:"\n'
    cfg = write_config(tmp_path / "gw.toml", [{"url": b.url}], head)
    cfg.write_text(cfg.read_text() + f'[[key]]\nkey = "{KEY}"\nruns_per_hour = 10\n')
    g = start_gateway(cfg, "--redis", own_redis.url)  # with the access log
    log = cfg.with_suffix(f".{g.url.rsplit(':', 1)[1]}.log")
    h = {"X-API-KEY": KEY}
    spec = {"language_id": "python3", "sourcecode": "print(open('f').read())"}

    def put(fid: str, text: str) -> int:
        body = {"file_contents": base64.b64encode(text.encode()).decode()}
        return httpx.put(g.url + API + f"/files/{fid}", json=body, headers=h).status_code

    def run(fid: str) -> httpx.Response:
        s = {**spec, "file_list": [[fid, "f"]]}
        return httpx.post(g.url + API + "/runs", json={"run_spec": s}, headers=h, timeout=60)

    try:
        assert put("beforefile1", "one") == 204
        assert [run("beforefile1").status_code for _ in range(3)] == [200] * 3
        assert status(g.url)["redis"] == "ok"
        own_redis.kill()
        # Redis away: rate-limited runs and files go on, counted and kept here
        assert put("duringfile1", "two") == 204
        assert httpx.head(g.url + API + "/files/duringfile1", headers=h).status_code == 204
        assert httpx.head(g.url + API + "/files/beforefile1", headers=h).status_code == 204
        assert run("nosuchfile1").status_code == 404
        got = [
            run(fid).status_code for fid in ("duringfile1", "beforefile1") * 3 + ("duringfile1",)
        ]
        assert got == [200] * 6 + [429], got  # 3 before + 1 + 6 here = the 10 of the hour
        assert status(g.url)["redis"] == "away"
        text = log.read_text()
        assert text.count("Redis at") == 1 and "unreachable" in text, text
        assert "Traceback" not in text and '"status": 500' not in text, text[-3000:]
        own_redis.start()  # back, and empty
        deadline = time.monotonic() + 30
        while status(g.url)["redis"] != "ok":
            assert time.monotonic() < deadline, "the gateway never saw Redis back"
            time.sleep(0.1)
        r = redis.Redis.from_url(own_redis.url)
        assert r.get("t:file:duringfile1") == b"two"  # handed back
        rate = [k for k in r.scan_iter("t:rate:*")]
        # the hour's count survives Redis restarting empty: 3 before, 8 meanwhile
        assert len(rate) == 1 and int(r.get(rate[0]) or 0) == 11
        assert run("duringfile1").status_code == 429  # shared again: the hour is used up
        text = log.read_text()
        assert text.count("Redis at") == 2 and "reachable again" in text, text
        assert "Traceback" not in text, text[-3000:]
    finally:
        g.stop()
        b.stop()


def test_hung_redis_is_an_outage_too(tmp_path: Path, own_redis: RedisServer) -> None:
    """SIGSTOP: Redis takes the connections and answers nothing. Requests wait
    for it once (the command time-out), then the gateway goes on alone."""
    import signal

    own_redis.start()
    b = start_backend(tmp_path)
    head = f'[gateway]\nfiles_dir = "{tmp_path / "files"}"\nhealth_interval = 0.3\n'
    head += f'operator_key = "{OP}"\nredis_prefix = "h:"\n'
    cfg = write_config(tmp_path / "gw.toml", [{"url": b.url}], head)
    cfg.write_text(cfg.read_text() + f'[[key]]\nkey = "{KEY}"\nruns_per_hour = 100\n')
    g = start_gateway(cfg, "--quiet", "--redis", own_redis.url)
    log = cfg.with_suffix(f".{g.url.rsplit(':', 1)[1]}.log")
    h = {"X-API-KEY": KEY}
    body = {"run_spec": {"language_id": "python3", "sourcecode": "print(1)"}}
    assert own_redis.p is not None
    try:
        assert httpx.post(g.url + API + "/runs", json=body, headers=h).status_code == 200
        own_redis.p.send_signal(signal.SIGSTOP)
        for _ in range(5):
            r = httpx.post(g.url + API + "/runs", json=body, headers=h, timeout=30)
            assert r.status_code == 200
        assert status(g.url)["redis"] == "away"
        own_redis.p.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 30
        while status(g.url)["redis"] != "ok":
            assert time.monotonic() < deadline, "the gateway never saw Redis back"
            time.sleep(0.1)
        text = log.read_text()
        assert text.count("unreachable") == 1 and text.count("reachable again") == 1, text
        assert "Traceback" not in text
    finally:
        own_redis.p.send_signal(signal.SIGCONT)
        g.stop()
        b.stop()
