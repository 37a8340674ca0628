"""The README's fan-out tour, typed in order on a fresh local cluster: every
command runs, and every summary line (and `ls` line) the README prints is
what the command prints. Local paths the tour writes outside the cluster go
to this test's directory instead."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
SUMMARY = re.compile(r"^(PASS|FAILED|TIMEOUT|UNREACHABLE|REFUSED|OOM): \S+, SUM: \d+$")


def tour() -> list[tuple[str, list[str]]]:
    """(command, the lines the README shows after it), in order."""
    text = README.read_text()
    part = text[text.index("## A tour") : text.index("### The same from Python")]
    steps: list[tuple[str, list[str]]] = []
    for line in part.splitlines():
        if line.startswith("    $ "):
            steps.append((line[6:], []))
        elif line.startswith("    ") and steps:
            steps[-1][1].append(line[4:])
        elif line.strip() and steps and not line.startswith("    "):
            steps.append(("", []))  # prose ends a block
    return [s for s in steps if s[0]]


def test_the_tour_finds_its_steps() -> None:
    steps = tour()
    assert steps[0][0] == "shoal cluster up -n 8" and len(steps) > 12
    assert any(SUMMARY.match(x) for _, out in steps for x in out)


def test_the_tour_works_typed_in_order(shoal_home: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    work = tmp_path / "work"
    work.mkdir()
    storage = shoal_home / "storage"  # under SHOAL_HOME: visible inside the nodes' /tmp
    checked = 0
    try:
        for cmd, shown in tour():
            cmd = cmd.replace("/var/tmp/storage", str(storage))
            cmd = cmd.replace("/tmp/big.tar", str(tmp_path / "big.tar"))
            cp = subprocess.run(["bash", "-c", cmd], cwd=work, env=env, capture_output=True,
                                text=True, timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip
            got = cp.stdout.splitlines()
            for want in shown:
                if SUMMARY.match(want) or cmd.startswith("ls "):
                    assert want in got, (cmd, want, cp.stdout, cp.stderr)
                    checked += 1
            if cmd.startswith("ls "):
                assert len(got) == len(shown), (cmd, got, shown)
    finally:
        subprocess.run(["shoal", "cluster", "down"], env=env, capture_output=True, timeout=120)
    assert checked >= 12  # the summaries of run, -b, -t, OOM, scratch, ping, copy, gather...


def controller_tour() -> list[str]:
    text = README.read_text()
    part = text[text.index("## Keep the fleet") : text.index("## One endpoint")]
    return [line[6:] for line in part.splitlines() if line.startswith("    $ ")]


def test_the_controller_tour_works_typed_in_order(tmp_path: Path) -> None:
    """The same for the controller's block, as one shell session (it exports
    and backgrounds), on a free port, with the pauses a person takes: until
    the controller answers, until the agents registered, one cron tick."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lines = ["set -u", f"export TMPDIR={tmp_path}"]
    for cmd in controller_tour():
        cmd = cmd.replace("127.0.0.1:8443", f"127.0.0.1:{port}")
        if cmd.startswith("shoal jobs history"):
            lines.append("sleep 7")  # a cron tick of */5 s, then its run
        lines.append(cmd if cmd.endswith("&") else f'{cmd}\necho "@@ $?"')  # after a # too
        if cmd.startswith("shoal controller"):
            # (the tour exports the controller's URL only on its next line)
            lines.append(
                f"for i in $(seq 150); do SHOAL_CONTROLLER_URL=https://127.0.0.1:{port}"
                " shoal nodes >/dev/null 2>&1 && break; sleep 0.2; done"
            )
        if cmd.startswith("shoal cluster up"):
            lines.append(
                "for i in $(seq 150); do [ $(shoal nodes --json | grep -c '\"running\"') = 4 ]"
                " && break; sleep 0.2; done"
            )
    lines += ["kill %1", "shoal cluster down"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("SHOAL_CONTROLLER_URL", None)
    cp = subprocess.run(["bash", "-c", "\n".join(lines)], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=300)  # fmt: skip
    out = cp.stdout
    codes = [int(x.split()[1]) for x in out.splitlines() if x.startswith("@@ ")]
    # every command but `jobs add bad` (a cron that can never fire) succeeds
    assert codes == [0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0], (codes, out, cp.stderr)
    assert "node3: drained" in out and "job scrub added; next run" in out
    assert "hour field '25'" in cp.stderr
    assert out.count("running") >= 3 and "node4" in out
    history = out[out.index("SCHEDULED") :]
    assert "node4=failed" in history.replace("\n", "").replace("│", "").replace(" ", "")


def gateway_tour(
    start: str = "## One endpoint", end: str = "## Benchmark campaigns"
) -> list[tuple[str, list[str]]]:
    """(command, the lines shown after it) of a section's block (the gateway's
    by default); a here-document and a line ending in a backslash belong to
    their command."""
    text = README.read_text()
    part = text[text.index(start) : text.index(end)]
    steps: list[tuple[str, list[str]]] = []
    heredoc = False
    for line in part.splitlines():
        if not line.startswith("    "):
            continue
        body = line[4:]
        if heredoc or (steps and steps[-1][0].endswith("\\")):
            steps[-1] = (steps[-1][0] + "\n" + body, steps[-1][1])
            heredoc = heredoc and body != "EOF"
        elif body.startswith("$ "):
            steps.append((body[2:], []))
            heredoc = "<<'EOF'" in body
        elif steps:
            steps[-1][1].append(body)
    return steps


def test_the_gateway_tour_works_typed_in_order(tmp_path: Path) -> None:
    """The gateway's block as one shell session, on free ports, with the pauses
    a person takes (until each server answers); its run answer, the state of
    each backend and the refusal of a bad config are what the README shows."""
    import socket

    ports = {}
    for p in ("4001", "4002", "8080"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports[p] = str(s.getsockname()[1])
    backend = str(README.parent / "tests" / "gateway" / "jobe_backend.py")
    wait = "for i in $(seq 150); do curl -s -o /dev/null {url} && break; sleep 0.2; done"
    lines, shown = ["set -u"], {}
    for cmd, out in gateway_tour():
        for p, free in ports.items():
            cmd = cmd.replace(f":{p}", f":{free}").replace(f"--port {p}", f"--port {free}")
            out = [x.replace(f":{p}", f":{free}") for x in out]
        cmd = cmd.replace(
            ".venv/bin/python tests/gateway/jobe_backend.py", f"{sys.executable} {backend}"
        )
        shown[cmd.split("\n")[0]] = out
        # (a newline first: curl's answer has none)
        lines.append(
            cmd if cmd.endswith("&") or "&  " in cmd else f"{cmd}\nprintf '\\n@@ %s\\n' $?"
        )
        if "--port" in cmd:
            port = cmd.split("--port ")[1].split()[0]
            lines.append(
                wait.format(url=f"http://127.0.0.1:{port}/jobe/index.php/restapi/languages")
            )
        if "gateway serve --config gateway.toml" in cmd:
            lines.append(wait.format(url=f"http://127.0.0.1:{ports['8080']}/shoal/status"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    cp = subprocess.run(["bash", "-c", "\n".join(lines)], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=120)  # fmt: skip
    out = cp.stdout
    codes = [int(x.split()[1]) for x in out.splitlines() if x.startswith("@@ ")]
    # cat, curl, kill+sleep, status, printf, the refused config (5), the last kill
    assert codes == [0, 0, 0, 0, 0, 5, 0], (codes, out, cp.stderr)
    run = next(v for k, v in shown.items() if k.startswith("curl"))
    assert run[0] in out.splitlines(), (out, cp.stderr)
    rows = {r.split()[1]: r.split("│")[2].strip() for r in out.splitlines() if r.startswith("│")}
    assert rows[f"http://127.0.0.1:{ports['4001']}"] == "live", out
    assert rows[f"http://127.0.0.1:{ports['4002']}"].startswith("ejected ("), out
    refused = next(v for k, v in shown.items() if "bad.toml" in k and "serve" in k)
    assert refused[0] in cp.stderr, cp.stderr
    assert '"outcome": 15' in (tmp_path / "gateway.log").read_text()


def test_the_faas_tour_works_typed_in_order(tmp_path: Path) -> None:
    """The function platform's block as one shell session (waiting, as a person
    would, until the scheduler has written its address): every answer and
    error line it shows is what the commands print; the scheduler's last word
    says every container was removed."""
    import json as _json

    steps = gateway_tour("## Function scheduling", "## Exit status")
    assert steps[0][0].startswith("shoal cluster down; export SHOAL_HOME=")
    wait = (
        "for i in $(seq 300); do [ -s $SHOAL_HOME/faas/scheduler.addr ] && break; sleep 0.1; done"
    )
    lines = ["set -u", "trap 'shoal cluster down >/dev/null 2>&1' EXIT"]
    for cmd, _ in steps:
        lines.append(cmd)
        if cmd.endswith("&"):
            lines.append(wait)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    cp = subprocess.run(["bash", "-c", "\n".join(lines)], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=180)  # fmt: skip
    out, err = cp.stdout.splitlines(), cp.stderr.splitlines()
    shown = {cmd.split("\n")[0]: want for cmd, want in steps}
    for cmd, want in shown.items():
        for line in want:
            if line.startswith(("{", "HI", "shoal: error:")):
                assert line in out + err, (cmd, line, cp.stdout, cp.stderr)
            elif line.startswith("stopped:"):
                assert line in out, (line, cp.stdout, cp.stderr)
    assert _json.loads(next(x for x in out if x.startswith('{"hello": "again"'))) == {
        "hello": "again"
    }
    assert any(x.startswith("hello: warm on node") for x in err), cp.stderr
    rows = [x for x in out if x.startswith("│ hello") or x.startswith("│ upper")]
    assert len(rows) == 2 and all(r.split("│")[5].strip() == "1" for r in rows), cp.stdout
