"""The ASGI app: Jobe's REST API under /jobe/index.php/restapi/, plus
/metrics (Prometheus) and /shoal/status (the backends, for `shoal gateway status`)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router
from starlette.routing import request_response as _endpoint
from starlette.types import ASGIApp, Receive, Scope, Send

from shoal.errors import RequestError, UpstreamError
from shoal.gateway import jobe
from shoal.gateway.accesslog import AccessLog
from shoal.gateway.bodies import read_body
from shoal.gateway.config import GatewayConfig
from shoal.gateway.conns import ConnGuard, plan
from shoal.gateway.files import DiskFiles, FileStore, RedisFiles, valid_id
from shoal.gateway.jobe import JSON_TYPE, OVERLOAD, JobeError
from shoal.gateway.limits import Limits
from shoal.gateway.metrics import Metrics
from shoal.gateway.pool import Backend, Pool, QueueFull
from shoal.gateway.shared import Shared
from shoal.gateway.upstream import MAX_IDLE, Upstream

MAX_JOB_ID = 200  # characters of X-CodeRunner-Job-Id kept for affinity
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
    async def jobe_api(self, request: Request) -> Response:
        """Every path but the gateway's own: routed as Jobe's CodeIgniter routes."""
        raw = request.scope.get("raw_path") or request.scope["path"].encode()
        try:
            r = jobe.route(request.method, raw.decode("latin-1"), request.headers)
        except JobeError as no_route:
            return refusal(request, no_route)
        if r.name == "preflight":
            return Response(status_code=204, headers=jobe.CORS)
        if denied := await self.key_error(request):
            return denied
        if r.name == "languages":
            return await self.languages()
        if r.name == "runs":
            return await self.post_run(request)
        if r.name == "put_file":
            return await self.put_file(request, r.fid)
        return await self.head_file(r.fid)

    async def languages(self) -> Response:
        seen: dict[str, list[str]] = {}
        for b in self.pool.live():
            for lang, version in b.languages:
                seen.setdefault(lang, [lang, version])
        return answer(200, sorted(seen.values()))

    async def put_file(self, request: Request, fid: str) -> Response:
        try:
            data = jobe.check_put(await read_body(request, self.s.max_file_body, "put"), fid)
        except RequestError as bad:
            return refuse(bad)
        except JobeError as e:
            return refusal(request, e)
        if not valid_id(fid):  # longer than a file name: Jobe cannot write it either
            return err(500, f"put: failed to write file {fid} to cache")
        try:
            await self.files.put(fid, data)
        except OSError:  # a full disk, say: Jobe's own answer
            return err(500, f"put: failed to write file {fid} to cache")
        for b in self.pool.backends:
            b.known_files.discard(fid)  # same id, maybe new contents
        return Response(status_code=204)

    async def head_file(self, fid: str) -> Response:
        found = valid_id(fid) and await self.files.exists(fid)
        return Response(status_code=204) if found else answer(404, None)

    async def post_run(self, request: Request) -> Response:
        try:
            raw = await read_body(request, self.s.max_run_body, "runs_post")
            run = jobe.check_run(raw, self.pool.cputime_limit)
        except RequestError as bad:
            return refuse(bad)
        except JobeError as e:
            return refusal(request, e)
        status = await self.limits.charge_run(request.headers.get("x-api-key"))
        if status == 429:
            return err(429, "Rate limit exceeded for this API key")
        for fid in run.file_ids:
            if not valid_id(fid) or not await self.files.exists(fid):
                return err(404, "One or more of the specified files is missing/unavailable")
        if run.overload_test:  # Jobe's test hook: its overload answer, once the files are there
            return self._outcome(request, OVERLOAD)
        # The client's own bytes go to the backend: validated, never re-encoded.
        return await self.route_run(request, raw, run)

    async def route_run(self, request: Request, raw: bytes, run: jobe.Run) -> Response:
        job = request.headers.get("x-coderunner-job-id")
        if job is not None and len(job) > MAX_JOB_ID:
            job = None  # the affinity map keeps 100,000 ids: not of any size
        excluded: set[str] = set()
        fids = run.file_ids
        # one deadline for all attempts: a retry waits only what is left of it
        deadline = time.monotonic() + self.s.queue_timeout
        for attempt in range(self.s.retries + 1):
            left = max(0.0, deadline - time.monotonic())
            try:
                b = await self.pool.acquire(
                    run.language, excluded, job, run.cputime, timeout=left, retry=attempt > 0
                )
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
        return answer(200, result)

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
        if r.status == 204:
            return Response(status_code=204)
        return Response(r.body, status_code=r.status, media_type=JSON_TYPE)

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
        return answer(
            200,
            {
                "balance": self.s.balance,
                "queued": self.pool.waiters,
                "gateways": self.pool.peers,
                "redis": None if self.shared is None else ("ok" if self.shared.up else "away"),
                "connections": self.conns.status(),
                "backends": rows,
            },
        )

    def asgi(self) -> ASGIApp:
        routes = [
            Route("/metrics", self.metrics_view, methods=["GET"]),
            Route("/shoal/status", self.status, methods=["GET"]),
            Route("/{path:path}", AnyMethod(self.jobe_api), methods=None),
        ]
        # A bare Router, not Starlette(): its two exception middlewares cost CPU on
        # every proxied run; uvicorn answers 500 for an uncaught error just the same.
        router = Router(routes, lifespan=self.lifespan, redirect_slashes=False)
        return AccessLog(router, self.metrics)


class AnyMethod:
    """An endpoint as an ASGI app, so that its Route takes every method (with a
    function, Starlette's takes GET only): Jobe's own routing decides."""

    def __init__(self, fn: Any) -> None:
        self.app = _endpoint(fn)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def answer(status: int, value: Any) -> Response:
    """A JSON answer as Jobe's framework sends it (None: an empty body, as
    CodeIgniter's respond(null, 404) still labelled JSON)."""
    body = b"" if value is None else jobe.encode(value)
    return Response(body, status_code=status, media_type=JSON_TYPE)


def err(status: int, message: str) -> Response:
    """Jobe answers errors with a JSON string."""
    return answer(status, message)


HTML_PAGE = (
    '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>{status}</title>'
    "</head>\n<body><h1>{status}</h1></body>\n</html>\n"
)


def refusal(request: Request, e: JobeError) -> Response:
    """Jobe's answer for ``e``: the framework's own errors ("" as body) are an
    HTML page to a client that asks for text/html, as CodeIgniter's are."""
    if e.body == "" and jobe.wants_html(request.headers) and request.method != "HEAD":
        page = HTML_PAGE.format(status=e.status).encode()
        return Response(page, status_code=e.status, media_type="text/html; charset=UTF-8")
    if request.method == "HEAD":
        return answer(e.status, None)
    return answer(e.status, e.body)


def refuse(e: RequestError) -> Response:
    """A refused body; after a 413 the connection is closed, the rest unread."""
    headers = {"Connection": "close"} if e.status == 413 else None
    return Response(jobe.encode(e.message), e.status, headers, JSON_TYPE)
