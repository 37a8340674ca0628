"""What the gateway gives away (issue #10, item 17): with API keys configured,
/metrics and /shoal/status need the operator key (a client key is not
enough), and client keys never stand in clear in Redis or in the log."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import httpx
from procs import API, start_backend, start_gateway, write_config

RUN = {"run_spec": {"language_id": "python3", "sourcecode": "print(1)"}}
CLIENT_KEY = "moodle-prod-4f9c2e7a1b"
OPERATOR_KEY = "op-7d1e99c0aa"


def conf(tmp: Path, backend_url: str, extra: str = "") -> Path:
    head = f'[gateway]\nfiles_dir = "{tmp / "files"}"\nhealth_interval = 0.3\n' + extra
    cfg = write_config(tmp / "gw.toml", [{"url": backend_url}], head)
    cfg.write_text(cfg.read_text() + f'[[key]]\nkey = "{CLIENT_KEY}"\nruns_per_hour = 50\n')
    return cfg


def shoal(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shoal.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_status_and_metrics_need_the_operator_key(tmp_path: Path) -> None:
    b = start_backend(tmp_path)
    g = start_gateway(conf(tmp_path, b.url, f'operator_key = "{OPERATOR_KEY}"\n'), "--quiet")
    try:
        for path in ("/metrics", "/shoal/status"):
            assert httpx.get(g.url + path).status_code == 403, path
            assert httpx.get(g.url + path, headers={"X-API-KEY": CLIENT_KEY}).status_code == 403
            assert httpx.get(g.url + path, headers={"X-API-KEY": "wrong"}).status_code == 403
            r = httpx.get(g.url + path, headers={"X-API-KEY": OPERATOR_KEY})
            assert r.status_code == 200, path
            bearer = {"Authorization": f"Bearer {OPERATOR_KEY}"}  # as Prometheus sends it
            assert httpx.get(g.url + path, headers=bearer).status_code == 200, path
        # the operator key is not a client key: it runs nothing
        r = httpx.post(g.url + API + "/runs", json=RUN, headers={"X-API-KEY": OPERATOR_KEY})
        assert r.status_code == 403
        r = shoal("gateway", "status", "--url", g.url)
        assert r.returncode == 5 and r.stderr.count("\n") == 1, r.stderr
        assert "operator key" in r.stderr
        r = shoal("gateway", "status", "--url", g.url, "--key", OPERATOR_KEY)
        assert r.returncode == 0 and b.url in r.stdout, r.stderr
        env = {"SHOAL_GATEWAY_OPERATOR_KEY": OPERATOR_KEY}
        r = shoal("gateway", "status", "--url", g.url, "--json", env=env)
        assert r.returncode == 0 and '"backends"' in r.stdout, r.stderr
    finally:
        g.stop()
        b.stop()


def test_keys_without_operator_key_close_status_and_say_why(tmp_path: Path) -> None:
    b = start_backend(tmp_path)
    cfg = conf(tmp_path, b.url)
    g = start_gateway(cfg, "--quiet")
    try:
        for path in ("/metrics", "/shoal/status"):
            r = httpx.get(g.url + path, headers={"X-API-KEY": CLIENT_KEY})
            assert r.status_code == 403 and "operator_key" in r.json(), path
    finally:
        g.stop()
        b.stop()
    log = cfg.with_suffix(f".{g.url.rsplit(':', 1)[1]}.log").read_text()
    assert log.count("no operator_key") == 1, log  # said once, at start


def test_client_keys_are_hashed_in_redis_and_never_logged(tmp_path: Path, redis_url: str) -> None:
    import redis

    prefix = os.environ["SHOAL_TEST_REDIS_PREFIX"] + ":"
    b = start_backend(tmp_path)
    cfg = conf(tmp_path, b.url, f'redis_prefix = "{prefix}"\n')
    g = start_gateway(cfg, "--redis", redis_url)  # with the access log
    try:
        h = {"X-API-KEY": CLIENT_KEY}
        for _ in range(2):
            assert httpx.post(g.url + API + "/runs", json=RUN, headers=h).status_code == 200
        names = [k.decode() for k in redis.Redis.from_url(redis_url).scan_iter(f"{prefix}*")]
        rate = [n for n in names if n.startswith(prefix + "rate:")]
        assert len(rate) == 1, names
        assert not any(CLIENT_KEY in n for n in names), names
        assert hashlib.sha256(CLIENT_KEY.encode()).hexdigest()[:32] in rate[0]
        assert redis.Redis.from_url(redis_url).get(rate[0]) == b"2"
    finally:
        g.stop()
        b.stop()
    log = cfg.with_suffix(f".{g.url.rsplit(':', 1)[1]}.log").read_text()
    assert CLIENT_KEY not in log and '"status": 200' in log
