"""Every row of the Jobe API through a real gateway in front of real backends."""

from __future__ import annotations

import base64
from typing import Any

import httpx
from procs import API, Proc, control

HELLO_C = '#include <stdio.h>\nint main(void){printf("hi\\n");return 0;}\n'


def run(gw: Proc, spec: dict[str, Any], **kw: Any) -> httpx.Response:
    return httpx.post(gw.url + API + "/runs", json={"run_spec": spec}, timeout=60, **kw)


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_languages_is_the_union_of_live_backends(gateway: Proc) -> None:
    r = httpx.get(gateway.url + API + "/languages")
    assert r.status_code == 200
    names = [p[0] for p in r.json()]
    assert names == ["c", "python3"]


def test_outcome_15_ok_in_c_and_python(gateway: Proc) -> None:
    r = run(gateway, {"language_id": "c", "sourcecode": HELLO_C})
    assert r.status_code == 200 and r.json()["outcome"] == 15 and r.json()["stdout"] == "hi\n"
    r = run(gateway, {"language_id": "python3", "sourcecode": "print(input())", "input": "x\n"})
    assert r.json()["outcome"] == 15 and r.json()["stdout"] == "x\n"


def test_outcome_11_compile_error(gateway: Proc) -> None:
    r = run(gateway, {"language_id": "c", "sourcecode": "int main( {"})
    assert r.json()["outcome"] == 11 and "error" in r.json()["cmpinfo"]


def test_outcome_12_runtime_error(gateway: Proc) -> None:
    r = run(gateway, {"language_id": "python3", "sourcecode": "1/0"})
    assert r.json()["outcome"] == 12 and "ZeroDivisionError" in r.json()["stderr"]


def test_outcome_13_time_limit(gateway: Proc) -> None:
    spec = {
        "language_id": "c",
        "sourcecode": "int main(void){for(;;);}",
        "parameters": {"cputime": 1},
    }
    assert run(gateway, spec).json()["outcome"] == 13


def test_outcome_17_memory_limit(gateway: Proc) -> None:
    src = "x = bytearray(900 * 1024 * 1024)"
    spec = {"language_id": "python3", "sourcecode": src, "parameters": {"memorylimit": 200}}
    assert run(gateway, spec).json()["outcome"] == 17


def test_outcome_20_internal_error_is_answered_not_retried(
    gateway: Proc, two_backends: list[Proc]
) -> None:
    """20 is the run's answer (Jobe could not run it), not an overload: passed on once."""
    before = sum(int(str(control(b, broken=True)["runs"])) for b in two_backends)
    try:
        r = run(gateway, {"language_id": "python3", "sourcecode": "print(1)"})
    finally:
        after = sum(int(str(control(b, broken=False)["runs"])) for b in two_backends)
    assert r.status_code == 200
    assert r.json()["outcome"] == 20 and "sandbox" in r.json()["stderr"]
    assert after - before == 1


def test_get_run_is_404(gateway: Proc) -> None:
    assert httpx.get(gateway.url + API + "/runs/123").status_code == 404


def test_put_head_and_run_with_file(gateway: Proc) -> None:
    url = gateway.url + API + "/files/datafile1"
    assert httpx.head(url).status_code == 404
    assert httpx.put(url, json={"file_contents": b64("42\n")}).status_code == 204
    assert httpx.head(url).status_code == 204
    src = "print(open('in.txt').read().strip())"
    spec = {"language_id": "python3", "sourcecode": src, "file_list": [["datafile1", "in.txt"]]}
    r = run(gateway, spec)
    assert r.json()["outcome"] == 15 and r.json()["stdout"] == "42\n"


def test_file_purged_at_backend_is_pushed_and_run_again(
    gateway: Proc, two_backends: list[Proc]
) -> None:
    url = gateway.url + API + "/files/datafile2"
    assert httpx.put(url, json={"file_contents": b64("7\n")}).status_code == 204
    src = "print(open('f').read().strip())"
    spec = {"language_id": "python3", "sourcecode": src, "file_list": [["datafile2", "f"]]}
    for _ in range(4):  # reach both backends
        assert run(gateway, spec).json()["stdout"] == "7\n"
    for b in two_backends:
        control(b, purge=True)
    for _ in range(4):
        r = run(gateway, spec)
        assert r.status_code == 200 and r.json()["stdout"] == "7\n"


def test_bad_bodies(gateway: Proc) -> None:
    """Statuses as Jobe's (texts: test_jobe_conformance.py)."""
    runs = gateway.url + API + "/runs"
    assert httpx.post(runs, content=b"not json{").status_code == 500
    assert httpx.post(runs, content=b"").status_code == 400
    assert httpx.post(runs, json={"nope": 1}).status_code == 500  # PHP: undefined property
    assert httpx.post(runs, json={"run_spec": 1}).status_code == 400
    assert run(gateway, {"language_id": "c"}).status_code == 400
    assert run(gateway, {"sourcecode": "x"}).status_code == 400
    assert run(gateway, {"language_id": "cobol", "sourcecode": "x"}).status_code == 400
    over = {"language_id": "c", "sourcecode": HELLO_C, "parameters": {"cputime": 500}}
    assert run(gateway, over).status_code == 400
    for bad in ([["x"]], [["a b", "f"]], [[1, "f"]], [["shortid", "f"]], [["okfileid", "../e"]]):
        spec = {"language_id": "c", "sourcecode": HELLO_C, "file_list": bad}
        assert run(gateway, spec).status_code == 400, bad
    for bad in ("notalist", ["x"]):  # PHP's foreach and count() fail: Jobe's 500
        spec = {"language_id": "c", "sourcecode": HELLO_C, "file_list": bad}
        assert run(gateway, spec).status_code == 500, bad
    missing = {"language_id": "c", "sourcecode": HELLO_C, "file_list": [["nowhere9", "f"]]}
    assert run(gateway, missing).status_code == 404
    files = gateway.url + API + "/files/"
    assert httpx.put(files + "abc", content=b"zzz").status_code == 500  # uncaught in Jobe
    assert httpx.put(files + "abc", json={}).status_code == 400
    assert httpx.put(files + "abc", json={"file_contents": "!!notb64"}).status_code == 400
    assert httpx.put(files + "a-b", json={"file_contents": b64("x")}).status_code == 404
    assert httpx.head(files + "abc").status_code == 404


def test_metrics_and_status(gateway: Proc) -> None:
    run(gateway, {"language_id": "python3", "sourcecode": "print(1)"})
    m = httpx.get(gateway.url + "/metrics").text
    assert 'shoal_gateway_run_outcomes_total{outcome="15"}' in m
    assert "shoal_gateway_queue_depth" in m
    st = httpx.get(gateway.url + "/shoal/status").json()
    assert all(b["live"] for b in st["backends"]) and len(st["backends"]) == 2
