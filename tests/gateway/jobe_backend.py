"""A small Jobe stand-in for tests and the bench (Jobe itself is PHP on Apache
and cannot be installed here). It answers every request as a Jobe 2.x server
does (routes, checks and error texts from shoal.gateway.jobe, the model of
Jobe the gateway uses; results with Jobe's five keys; the overload test hook
``!** TESTING OVERLOAD EXCEPTION **!``), and really compiles and runs C (gcc)
and Python programs as Jobe does (a shell command of compiler or interpreter,
parameters and args, under RLIMIT_CPU / RLIMIT_AS). It has a fixed number of
slots and answers outcome 21 after a bounded wait, keeps a file cache, and
obeys a control endpoint: POST /control {"slow": factor, "fail": true|false,
"purge": true, "broken": true|false (runs answer outcome 20, as a Jobe whose
sandbox is broken)}.

    python tests/gateway/jobe_backend.py --port 4001 --slots 4 --overload-wait 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shlex
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shoal.gateway import jobe, php
from shoal.gateway.app import AnyMethod
from shoal.gateway.jobe import JSON_TYPE, JobeError

LANGS = [["c", "gcc"], ["python3", sys.version.split()[0]]]
DEFAULTS = {"cputime": 5, "memorylimit": 400, "streamsize": 2, "numprocs": 30}
PY_DEFAULTS = {**DEFAULTS, "memorylimit": 1000}
C_ARGS = ["-Wall", "-Werror", "-std=c99", "-x c"]


def answer(status: int, value: Any) -> Response:
    body = b"" if value is None else jobe.encode(value)
    return Response(body, status_code=status, media_type=JSON_TYPE)


def php_bool(v: Any) -> bool:
    return v not in (None, False, 0, 0.0, "", "0", [], {})


def clean(data: bytes) -> str:
    """ResultObject::clean: valid UTF-8 as it is, else bytes shown as \\xNN."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        keep = (9, 10, 13)
        return "".join(chr(c) if (32 <= c <= 0x7E or c in keep) else f"\\x{c:02x}" for c in data)


class Jobe:
    def __init__(
        self, slots: int, wait: float, delay: float, files: Path, cputime_limit: int
    ) -> None:
        self.slots = asyncio.Semaphore(slots)
        self.wait = wait
        self.delay = delay
        self.slow = 1.0
        self.fail = False
        self.broken = False
        self.files = files
        self.cputime_limit = cputime_limit
        files.mkdir(parents=True, exist_ok=True)
        self.runs = 0
        self.busy = 0
        self.max_busy = 0  # most runs sent to it at once
        self.echo = False

    def limit(self, lang: str) -> int | None:
        return self.cputime_limit if lang in {p[0] for p in LANGS} else None

    async def api(self, request: Request) -> Response:
        raw = request.scope.get("raw_path") or request.scope["path"].encode()
        try:
            r = jobe.route(request.method, raw.decode("latin-1"), request.headers)
            if r.name == "preflight":
                return Response(status_code=204, headers=jobe.CORS)
            if r.name == "languages":
                if self.fail:
                    return answer(500, "failing on purpose")
                return answer(200, LANGS)
            if r.name == "put_file":
                data = jobe.check_put(await request.body(), r.fid)
                try:
                    (self.files / r.fid).write_bytes(data)
                except OSError:
                    return answer(500, f"put: failed to write file {r.fid} to cache")
                return Response(status_code=204)
            if r.name == "head_file":
                try:
                    found = (self.files / r.fid).is_file()
                except OSError:
                    found = False
                return Response(status_code=204) if found else answer(404, None)
            return await self.post_run(request)
        except JobeError as e:
            if request.method == "HEAD":
                return answer(e.status, None)
            if e.body == "" and jobe.wants_html(request.headers):
                page = f"<!DOCTYPE html><title>{e.status}</title>"
                return Response(page, e.status, media_type="text/html; charset=UTF-8")
            return answer(e.status, e.body)

    async def control(self, request: Request) -> Response:
        body = json.loads(await request.body() or b"{}")
        if "slow" in body:
            self.slow = float(body["slow"])
        if "fail" in body:
            self.fail = bool(body["fail"])
        if "broken" in body:
            self.broken = bool(body["broken"])
        if body.get("purge"):
            for f in self.files.iterdir():
                f.unlink()
        return answer(
            200,
            {"slow": self.slow, "fail": self.fail, "runs": self.runs, "max_busy": self.max_busy},
        )

    async def post_run(self, request: Request) -> Response:
        if self.fail:
            return answer(500, "failing on purpose")
        raw = await request.body()
        run = jobe.check_run(raw, self.limit)
        spec = json.loads(raw)["run_spec"]
        files = spec.get("file_list") or []
        for f in files if isinstance(files, list) else files.values():
            try:
                found = (self.files / f[0]).is_file()
            except OSError:
                found = False
            if not found:
                raise JobeError(404, "One or more of the specified files is missing/unavailable")
        if run.overload_test:
            return answer(200, jobe.OVERLOAD)
        self.busy += 1  # runs sent to us at once, waiting for a slot or not
        self.max_busy = max(self.max_busy, self.busy)
        try:
            return await self._run(run, spec)
        finally:
            self.busy -= 1

    async def _run(self, run: jobe.Run, spec: dict[str, Any]) -> Response:
        try:
            await asyncio.wait_for(self.slots.acquire(), self.wait)
        except TimeoutError:
            return answer(200, jobe.OVERLOAD)
        try:
            self.runs += 1
            if self.delay:
                await asyncio.sleep(self.delay * self.slow)
            if self.broken:
                res = jobe.result(None, 20, stderr="runguard: cannot set up the sandbox")
                return answer(200, res)
            if self.echo:  # bench mode: the run is the delay, nothing is executed
                return answer(200, jobe.result(None, 15, stdout=php.php_str(spec.get("input"))))
            return answer(200, await self.execute(run, spec))
        finally:
            self.slots.release()

    async def execute(self, run: jobe.Run, spec: dict[str, Any]) -> dict[str, Any]:
        raw_params = spec.get("parameters")
        params = raw_params if isinstance(raw_params, dict) else {}
        defaults = PY_DEFAULTS if run.language == "python3" else DEFAULTS

        def param(key: str) -> Any:  # LanguageTask::getParam: a non-number is the default
            v = params.get(key, defaults.get(key))
            if key in defaults and not php.is_numeric(v):
                return defaults[key]
            return v

        def args(key: str, default: list[str]) -> str:
            v = params.get(key, default)
            return " ".join(php.php_str(a) for a in v) if isinstance(v, list) else ""

        debug = php_bool(spec.get("debug"))
        d = Path(tempfile.mkdtemp(prefix="jobe_"))
        try:
            name = php.php_str(spec.get("sourcefilename")) or (
                "prog.c" if run.language == "c" else "prog.py"
            )
            (d / name).write_text(php.php_str(spec["sourcecode"]))
            files = spec.get("file_list") or []
            for f in files if isinstance(files, list) else files.values():
                shutil.copy(self.files / f[0], d / f[1])
            if run.language == "c":
                cmd = (
                    f"gcc {args('compileargs', C_ARGS)} -o {name}.exe {name} {args('linkargs', [])}"
                )
                out, err, _ = await self.sandbox(cmd, d, 10, 500, 2_000_000, b"")
                if err:
                    return jobe.result(None, 11, cmpinfo=clean(err))
                cmd = f"./{name}.exe {args('runargs', [])}"
            else:
                py = shlex.quote(sys.executable)
                out, err, _ = await self.sandbox(
                    f"{py} -m py_compile {name}", d, 10, 1000, 2_000_000, b""
                )
                if err:
                    return jobe.result(None, 11, cmpinfo=clean(err))
                cmd = f"{py} {args('interpreterargs', ['-BE'])} {name} {args('runargs', [])}"
            cpu = max(1, int(float(param("cputime"))))
            mem = int(float(param("memorylimit")))
            stream = int(float(param("streamsize")) * 1_000_000)
            stdin = php.php_str(spec.get("input")).encode()
            out, err, why = await self.sandbox(cmd, d, cpu, mem, stream, stdin)
            rid = str(d) if debug else None
            res = jobe.result(rid, 15, stdout=clean(out), stderr=clean(err))
            if why == "time":
                return {**res, "outcome": 13, "stderr": ""}
            if b"MemoryError" in err:
                return {**res, "outcome": 17}
            if err or why == "error":
                return {**res, "outcome": 12}
            return res
        except OSError as e:
            return jobe.result(None, 20, stderr=str(e))
        finally:
            if not debug:
                shutil.rmtree(d, ignore_errors=True)

    async def sandbox(
        self, cmd: str, cwd: Path, cpu: int, mem_mb: int, stream: int, stdin: bytes
    ) -> tuple[bytes, bytes, str]:
        """Run ``cmd`` under sh with limits: (stdout, stderr, "" | "time" | "error")."""

        def limits() -> None:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
            if mem_mb:
                m = mem_mb * 1024 * 1024
                resource.setrlimit(resource.RLIMIT_AS, (m, m))

        p = await asyncio.create_subprocess_exec(
            "sh", "-c", cmd, cwd=cwd, preexec_fn=limits, start_new_session=True,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert p.stdin and p.stdout and p.stderr
        over = False

        async def read(s: asyncio.StreamReader) -> bytes:
            nonlocal over
            got = bytearray()
            while chunk := await s.read(65536):
                if len(got) < stream:
                    got += chunk[: stream - len(got)]
                elif not over:  # Jobe's streamsize: the run is stopped
                    over = True
                    os.killpg(p.pid, signal.SIGKILL)
            return bytes(got)

        async def feed() -> None:
            try:
                p.stdin.write(stdin)  # type: ignore[union-attr]
                await p.stdin.drain()  # type: ignore[union-attr]
                p.stdin.close()  # type: ignore[union-attr]
            except (BrokenPipeError, ConnectionResetError):
                pass

        try:
            out, err, _ = await asyncio.wait_for(
                asyncio.gather(read(p.stdout), read(p.stderr), feed()), 2 * cpu + 2
            )
        except TimeoutError:
            os.killpg(p.pid, signal.SIGKILL)
            await p.wait()
            return b"", b"", "time"
        rc = await p.wait()
        if over or rc in (-signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGXCPU, 137):
            return out, err, "time"
        return out, err, "" if rc == 0 else "error"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--slots", type=int, default=16)
    ap.add_argument("--overload-wait", type=float, default=10.0)
    ap.add_argument("--delay", type=float, default=0.0, help="seconds added to every run")
    ap.add_argument("--files", type=Path, default=None)
    ap.add_argument("--cputime-limit", type=int, default=jobe.CPUTIME_LIMIT)
    ap.add_argument("--echo", action="store_true", help="bench: answer after --delay, run nothing")
    a = ap.parse_args()
    import uvicorn

    files = a.files or Path(tempfile.mkdtemp(prefix="jobe-files-"))
    j = Jobe(a.slots, a.overload_wait, a.delay, files, a.cputime_limit)
    j.echo = a.echo
    app = Starlette(
        routes=[
            Route("/control", j.control, methods=["POST"]),
            Route("/{path:path}", AnyMethod(j.api)),
        ]
    )
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    uvicorn.run(app, host="127.0.0.1", port=a.port, log_level="warning", backlog=4096)


if __name__ == "__main__":
    main()
