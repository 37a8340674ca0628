"""The ASGI app: Jobe's REST API under /jobe/index.php/restapi/, plus
/metrics (Prometheus) and /shoal/status (the backends, for `shoal gateway status`)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router
from starlette.types import ASGIApp

from shoal.errors import RequestError, UpstreamError
from shoal.gateway.accesslog import AccessLog
from shoal.gateway.bodies import parse_json, read_body
from shoal.gateway.config import GatewayConfig
from shoal.gateway.conns import ConnGuard, plan
from shoal.gateway.files import DiskFiles, FileStore, RedisFiles, valid_id
from shoal.gateway.limits import Limits
from shoal.gateway.metrics import Metrics
from shoal.gateway.pool import Backend, Pool, QueueFull
from shoal.gateway.shared import Shared
from shoal.gateway.upstream import MAX_IDLE, Upstream

API = "/jobe/index.php/restapi"
MAX_JOB_ID = 200  # characters of X-CodeRunner-Job-Id kept for affinity
MAX_CPUTIME = 50  # Jobe's default upper limit on parameters.cputime
FILE_NAME = re.compile(r"[A-Za-z0-9._-]{1,255}")  # fullmatch
OVERLOAD = {"run_id": "0", "outcome": 21}
log = logging.getLogger("shoal.gateway")


class Retry(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


class Gateway:
    def __init__(self, cfg: GatewayConfig) -> None:
        self.cfg = cfg
        self.s = cfg.settings
        self.metrics = Metrics()
        self.shared = Shared(self.s.redis) if self.s.redis else None
        local = DiskFiles(self.s.files_dir)
        self.files: FileStore = (
            RedisFiles(self.shared, self.s.redis_prefix, local) if self.shared else local
        )
        self.limits = Limits(cfg.keys, self.shared, self.s.redis_prefix)
        self.client = Upstream(self.s.run_timeout)
        self.pool = Pool(self.s, cfg.backends, self.client, self.metrics, self.shared)
        if self.shared is not None:
            shared = self.shared
            self.metrics.redis_up.set_function(lambda: float(shared.up))
        # descriptors kept for the process, Redis and every backend's connections
        reserve = 64 + sum(b.capacity + MAX_IDLE for b in cfg.backends)
        self.backlog, total = plan(reserve)
        total = self.s.max_connections or total
        self.conns = ConnGuard(
            self.s.max_connections_per_source, total, self.s.head_timeout, self.metrics
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[None]:
        asyncio.get_running_loop().set_exception_handler(self.conns.loop_errors)
        if self.limits.enabled and not self.s.operator_key:
            log.warning(
                "API keys are configured and no operator_key: /metrics and /shoal/status "
                "answer 403 until [gateway] operator_key is set"
            )
        await self.pool.check_all()
        await self.pool.sync_peers()
        task = asyncio.create_task(self.pool.health_loop())
        try:
            yield
        finally:
            task.cancel()
            await self.pool.leave()
            await self.client.close()
            if self.shared is not None:
                await self.shared.close()

    # ---- helpers ----------------------------------------------------------
    async def key_error(self, request: Request) -> Response | None:
        if not self.limits.known(request.headers.get("x-api-key")):
            return err(403, "Unknown or missing API key")
        return None

    def operator_error(self, request: Request) -> Response | None:
        """/metrics and /shoal/status: open without keys (as before); with client
        keys or an operator key configured, only for the operator key. A client
        key is not one: it is given to every Moodle site."""
        want = self.s.operator_key
        if want is None:
            if not self.limits.enabled:
                return None
            return err(403, "Operator key required: set [gateway] operator_key")
        given = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if given is None and auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        if given is None or not hmac.compare_digest(given.encode(), want.encode()):
            return err(403, "Unknown or missing operator key")
        return None

    # ---- routes -----------------------------------------------------------
    async def languages(self, request: Request) -> Response:
        if e := await self.key_error(request):
            return e
        seen: dict[str, list[str]] = {}
        for b in self.pool.live():
            for lang, version in b.languages:
                seen.setdefault(lang, [lang, version])
        return JSONResponse(sorted(seen.values()))

    async def put_file(self, request: Request) -> Response:
        if e := await self.key_error(request):
            return e
        fid = request.path_params["fid"]
        if not valid_id(fid):
            return err(400, "put: illegal file id (1 to 200 letters and digits)")
        try:
            body = parse_json(await read_body(request, self.s.max_file_body, "put"), "put")
        except RequestError as bad:
            return refuse(bad)
        contents = body.get("file_contents") if isinstance(body, dict) else None
        if not isinstance(contents, str):
            return err(400, "put: missing file_contents parameter")
        try:
            data = base64.b64decode(contents, validate=True)
        except (binascii.Error, ValueError):
            return err(400, f"put: contents of file {fid} are not valid base-64")
        try:
            await self.files.put(fid, data)
        except OSError:  # a full disk, say: Jobe's own answer
            return err(500, f"put: failed to write file {fid} to cache")
        for b in self.pool.backends:
            b.known_files.discard(fid)  # same id, maybe new contents
        return Response(status_code=204)

    async def head_file(self, request: Request) -> Response:
        if e := await self.key_error(request):
            return e
        fid = request.path_params["fid"]
        if not valid_id(fid):
            return Response(status_code=400)
        return Response(status_code=204 if await self.files.exists(fid) else 404)

    async def get_run(self, request: Request) -> Response:
        return err(404, "Unimplemented method: runs/{id}")

    async def post_run(self, request: Request) -> Response:
        if e := await self.key_error(request):
            return e
        try:
            raw = await read_body(request, self.s.max_run_body, "runs_post")
            body = parse_json(raw, "runs_post", invalid_status=500)  # as Jobe: 500
        except RequestError as bad:
            return refuse(bad)
        spec = body.get("run_spec") if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            return err(400, "runs_post: missing or invalid run_spec parameter")
        lang, src = spec.get("language_id"), spec.get("sourcecode")
        if not isinstance(lang, str) or not isinstance(src, str):
            return err(400, "runs_post: missing or invalid language_id or sourcecode")
        params = spec.get("parameters") or {}
        if not isinstance(params, dict):
            return err(400, "runs_post: parameters must be an object")
        cpu = params.get("cputime")
        if cpu is not None and (not isinstance(cpu, int | float) or cpu > MAX_CPUTIME):
            return err(400, f"runs_post: cputime exceeds maximum allowed ({MAX_CPUTIME})")
        file_ids = []
        file_list = spec.get("file_list") or []
        if not isinstance(file_list, list):
            return err(400, "runs_post: invalid file list")
        for f in file_list:
            if (
                not isinstance(f, list)
                or len(f) < 2
                or not isinstance(f[0], str)
                or not isinstance(f[1], str)
                or not valid_id(f[0])
                or not FILE_NAME.fullmatch(f[1])
            ):
                return err(400, "runs_post: invalid file list")
            file_ids.append(f[0])
        if not self.pool.knows(lang):
            return err(400, f"Language '{lang}' is not known")
        status = await self.limits.charge_run(request.headers.get("x-api-key"))
        if status == 429:
            return err(429, "Rate limit exceeded for this API key")
        for fid in file_ids:
            if not await self.files.exists(fid):
                return err(404, "One or more of the specified files is missing/unavailable")
        # The client's own bytes go to the backend: validated, never re-encoded.
        return await self.route_run(request, raw, lang, file_ids)

    async def route_run(self, request: Request, raw: bytes, lang: str, fids: list[str]) -> Response:
        job = request.headers.get("x-coderunner-job-id")
        if job is not None and len(job) > MAX_JOB_ID:
            job = None  # the affinity map keeps 100,000 ids: not of any size
        excluded: set[str] = set()
        for attempt in range(self.s.retries + 1):
            try:
                b = await self.pool.acquire(lang, excluded, job)
            except QueueFull:
                return self._outcome(request, OVERLOAD)
            if b is None:
                return self._outcome(request, OVERLOAD)
            request.state.backend = b.url
            try:
                return await self.run_on(request, b, raw, fids)
            except Retry as r:
                self.metrics.retries.labels(r.reason).inc()
                excluded.add(b.url)
                if attempt == self.s.retries:
                    break
            finally:
                await self.pool.release(b)
        return self._outcome(request, OVERLOAD)

    def _count(self, request: Request, outcome: object) -> None:
        request.state.outcome = outcome
        self.metrics.child(self.metrics.outcomes, str(outcome)).inc()

    def _outcome(self, request: Request, result: dict[str, Any]) -> Response:
        self._count(request, result.get("outcome"))
        return JSONResponse(result)

    async def push(self, b: Backend, fid: str) -> None:
        data = await self.files.get(fid)
        if data is None:
            return
        body = json.dumps({"file_contents": base64.b64encode(data).decode()}).encode()
        hdrs = {"Content-Type": "application/json", **b.headers()}
        r = await self.client.request("PUT", f"{b.base}/files/{fid}", body=body, headers=hdrs)
        if r.status >= 500:
            raise Retry("5xx")
        b.known_files.add(fid)

    async def ensure_files(self, b: Backend, fids: list[str]) -> None:
        for fid in fids:
            if fid in b.known_files:
                continue
            r = await self.client.request("HEAD", f"{b.base}/files/{fid}", headers=b.headers())
            if r.status == 204:
                b.known_files.add(fid)
            else:
                await self.push(b, fid)

    async def run_on(self, request: Request, b: Backend, raw: bytes, fids: list[str]) -> Response:
        """One attempt on ``b``: raises Retry when another backend should try."""
        t0 = time.perf_counter()
        try:
            await self.ensure_files(b, fids)
            hdrs = {"Content-Type": "application/json", **b.headers()}
            r = await self.client.request("POST", f"{b.base}/runs", body=raw, headers=hdrs)
            if r.status == 404 and fids:  # purged from the Jobe's cache: push, run once more
                for fid in fids:
                    b.known_files.discard(fid)
                    await self.push(b, fid)
                r = await self.client.request("POST", f"{b.base}/runs", body=raw, headers=hdrs)
        except UpstreamError as e:
            self.pool.failure(b)
            raise Retry("connection") from e
        finally:
            self.metrics.child(self.metrics.backend_latency, b.url).observe(
                time.perf_counter() - t0
            )
        if r.status >= 500:
            self.pool.failure(b)
            raise Retry("5xx")
        self.pool.success(b)
        if r.status == 200:
            try:
                result = json.loads(r.body)
            except ValueError:
                raise Retry("5xx") from None
            if isinstance(result, dict) and result.get("outcome") == 21:
                raise Retry("overload")
            b.observe(time.perf_counter() - t0)  # a run done: the balancer's latency
            if isinstance(result, dict):
                self._count(request, result.get("outcome"))
        return Response(r.body, status_code=r.status, media_type="application/json")

    async def metrics_view(self, request: Request) -> Response:
        if e := self.operator_error(request):
            return e
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def status(self, request: Request) -> Response:
        if e := self.operator_error(request):
            return e
        now = time.monotonic()
        rows = [
            {
                "url": b.url,
                "live": b.live,
                "weight": b.weight,
                "capacity": b.capacity,
                "capacity_here": self.pool.limit(b),
                "outstanding": b.outstanding,
                "runs": b.runs,
                "latency_ms": None if b.latency is None else round(b.latency * 1000, 1),
                "failures": b.failures,
                "ejections": b.ejections,
                "readmit_in": 0 if b.live else max(0.0, round(b.ejected_until - now, 1)),
                "languages": sorted(p[0] for p in b.languages),
            }
            for b in self.pool.backends
        ]
        return JSONResponse(
            {
                "balance": self.s.balance,
                "queued": self.pool.waiters,
                "gateways": self.pool.peers,
                "redis": None if self.shared is None else ("ok" if self.shared.up else "away"),
                "connections": self.conns.status(),
                "backends": rows,
            }
        )

    def asgi(self) -> ASGIApp:
        fp = API + "/files/{fid}"
        routes = [
            Route(API + "/languages", self.languages, methods=["GET"]),
            Route(fp, self.put_file, methods=["PUT"]),
            Route(fp, self.head_file, methods=["HEAD"]),
            Route(API + "/runs", self.post_run, methods=["POST"]),
            Route(API + "/runs/{rid}", self.get_run, methods=["GET"]),
            Route("/metrics", self.metrics_view, methods=["GET"]),
            Route("/shoal/status", self.status, methods=["GET"]),
        ]
        # A bare Router, not Starlette(): its two exception middlewares cost CPU on
        # every proxied run; uvicorn answers 500 for an uncaught error just the same.
        return AccessLog(Router(routes, lifespan=self.lifespan), self.metrics)


def err(status: int, message: str) -> Response:
    """Jobe answers errors with a JSON string."""
    return JSONResponse(message, status_code=status)


def refuse(e: RequestError) -> Response:
    """A refused body; after a 413 the connection is closed, the rest unread."""
    headers = {"Connection": "close"} if e.status == 413 else None
    return JSONResponse(e.message, status_code=e.status, headers=headers)
