"""A small Jobe-compatible server for tests and the bench (Jobe itself cannot
be installed here). It really compiles and runs C (gcc) and Python programs
under RLIMIT_CPU / RLIMIT_AS, has a fixed number of slots and answers
outcome 21 after a bounded wait, keeps a file cache, and obeys a control
endpoint: POST /control {"slow": factor, "fail": true|false, "purge": true,
"broken": true|false (runs answer outcome 20, as a Jobe whose sandbox is broken)}.

    python tests/gateway/jobe_backend.py --port 4001 --slots 4 --overload-wait 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import os
import re
import resource
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

API = "/jobe/index.php/restapi"
FILE_ID = re.compile(r"^[A-Za-z0-9]+$")
LANGS = [["c", "gcc"], ["python3", sys.version.split()[0]]]


class Jobe:
    def __init__(self, slots: int, wait: float, delay: float, files: Path) -> None:
        self.slots = asyncio.Semaphore(slots)
        self.wait = wait
        self.delay = delay
        self.slow = 1.0
        self.fail = False
        self.broken = False
        self.files = files
        files.mkdir(parents=True, exist_ok=True)
        self.runs = 0
        self.busy = 0
        self.max_busy = 0  # most runs sent to it at once
        self.echo = False

    async def languages(self, request: Request) -> Response:
        if self.fail:
            return JSONResponse("failing on purpose", status_code=500)
        return JSONResponse(LANGS)

    async def put_file(self, request: Request) -> Response:
        fid = request.path_params["fid"]
        try:
            body = json.loads(await request.body())
            data = base64.b64decode(body["file_contents"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error):
            return JSONResponse("put: bad body", status_code=400)
        if not FILE_ID.match(fid):
            return JSONResponse("bad id", status_code=400)
        (self.files / fid).write_bytes(data)
        return Response(status_code=204)

    async def head_file(self, request: Request) -> Response:
        fid = request.path_params["fid"]
        ok = FILE_ID.match(fid) and (self.files / fid).is_file()
        return Response(status_code=204 if ok else 404)

    async def get_run(self, request: Request) -> Response:
        return JSONResponse("runs/{id} is not implemented", status_code=404)

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
        return JSONResponse(
            {"slow": self.slow, "fail": self.fail, "runs": self.runs, "max_busy": self.max_busy}
        )

    async def post_run(self, request: Request) -> Response:
        if self.fail:
            return JSONResponse("failing on purpose", status_code=500)
        try:
            spec = json.loads(await request.body())["run_spec"]
            lang = spec["language_id"]
            spec["sourcecode"]
        except (ValueError, KeyError, TypeError):
            return JSONResponse("bad run_spec", status_code=400)
        if lang not in {p[0] for p in LANGS}:
            return JSONResponse(f"Language '{lang}' is not known", status_code=400)
        for f in spec.get("file_list") or []:
            if not (self.files / f[0]).is_file():
                return JSONResponse("One or more files missing", status_code=404)
        self.busy += 1  # runs sent to us at once, waiting for a slot or not
        self.max_busy = max(self.max_busy, self.busy)
        try:
            return await self._run(spec)
        finally:
            self.busy -= 1

    async def _run(self, spec: dict[str, Any]) -> Response:
        try:
            await asyncio.wait_for(self.slots.acquire(), self.wait)
        except TimeoutError:
            return JSONResponse({"run_id": "0", "outcome": 21})
        try:
            self.runs += 1
            if self.delay:
                await asyncio.sleep(self.delay * self.slow)
            if self.broken:
                return JSONResponse(
                    {"run_id": None, "outcome": 20, "cmpinfo": "", "stdout": "",
                     "stderr": "runguard: cannot set up the sandbox"}
                )  # fmt: skip
            if self.echo:  # bench mode: the run is the delay, nothing is executed
                out = {"run_id": None, "outcome": 15, "cmpinfo": "", "stderr": ""}
                return JSONResponse({**out, "stdout": spec.get("input", "")})
            return JSONResponse(await self.execute(spec))
        finally:
            self.slots.release()

    async def execute(self, spec: dict[str, Any]) -> dict[str, Any]:
        params = spec.get("parameters") or {}
        cpu = int(params.get("cputime", 5))
        mem = int(params.get("memorylimit", 400)) * 1024 * 1024
        res: dict[str, Any] = {"run_id": None, "cmpinfo": "", "stdout": "", "stderr": ""}
        d = Path(tempfile.mkdtemp(prefix="jobe-"))
        try:
            for f in spec.get("file_list") or []:
                shutil.copy(self.files / f[0], d / f[1])
            if spec["language_id"] == "c":
                (d / "prog.c").write_text(spec["sourcecode"])
                cc = await asyncio.create_subprocess_exec(
                    "gcc", "-o", str(d / "prog"), str(d / "prog.c"),
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                )  # fmt: skip
                out, _ = await cc.communicate()
                if cc.returncode != 0:
                    return {**res, "outcome": 11, "cmpinfo": out.decode(errors="replace")}
                argv = [str(d / "prog")]
            else:
                (d / "prog.py").write_text(spec["sourcecode"])
                argv = [sys.executable, "-I", str(d / "prog.py")]

            def limits() -> None:
                resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
                resource.setrlimit(resource.RLIMIT_AS, (mem, mem))

            p = await asyncio.create_subprocess_exec(
                *argv, cwd=d, preexec_fn=limits,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            stdin = str(spec.get("input", "")).encode()
            try:
                out, errb = await asyncio.wait_for(p.communicate(stdin), 3 * cpu + 2)
            except TimeoutError:
                p.kill()
                await p.wait()
                return {**res, "outcome": 13}
            res["stdout"], res["stderr"] = (
                out.decode(errors="replace"),
                errb.decode(errors="replace"),
            )
            rc = p.returncode
            if rc in (-signal.SIGXCPU, -signal.SIGKILL):
                return {**res, "outcome": 13}
            if "MemoryError" in res["stderr"]:
                return {**res, "outcome": 17}
            if rc != 0 or res["stderr"]:
                return {**res, "outcome": 12}
            return {**res, "outcome": 15}
        except OSError as e:
            return {**res, "outcome": 20, "stderr": str(e)}
        finally:
            shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--slots", type=int, default=16)
    ap.add_argument("--overload-wait", type=float, default=10.0)
    ap.add_argument("--delay", type=float, default=0.0, help="seconds added to every run")
    ap.add_argument("--files", type=Path, default=None)
    ap.add_argument("--echo", action="store_true", help="bench: answer after --delay, run nothing")
    a = ap.parse_args()
    import uvicorn

    files = a.files or Path(tempfile.mkdtemp(prefix="jobe-files-"))
    j = Jobe(a.slots, a.overload_wait, a.delay, files)
    j.echo = a.echo
    fp = API + "/files/{fid}"
    app = Starlette(
        routes=[
            Route(API + "/languages", j.languages, methods=["GET"]),
            Route(fp, j.put_file, methods=["PUT"]),
            Route(fp, j.head_file, methods=["HEAD"]),
            Route(API + "/runs", j.post_run, methods=["POST"]),
            Route(API + "/runs/{rid}", j.get_run, methods=["GET"]),
            Route("/control", j.control, methods=["POST"]),
        ]
    )
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    uvicorn.run(app, host="127.0.0.1", port=a.port, log_level="warning", backlog=4096)


if __name__ == "__main__":
    main()
