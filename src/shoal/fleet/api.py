"""The controller's HTTP API (FastAPI; OpenAPI at /openapi.json, docs at /docs).

Behind mutual TLS: the caller's identity is the CN of its verified client
certificate. A node may only register and heartbeat as its own CN.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from shoal.errors import UsageError
from shoal.fleet import cronspec
from shoal.fleet.controller import STATES, Controller
from shoal.fleet.db import Event, Job, JobRun, Node

# peer CN by (host, port) of the TLS connection, filled by the server protocol
PEERS: dict[tuple[str, int], str] = {}


class RegisterIn(BaseModel):
    name: str = Field(..., description="must equal the certificate CN unless insecure")
    pool: str | None = None
    facts: dict[str, Any] = Field(default_factory=dict)


class HeartbeatIn(BaseModel):
    name: str


class JobIn(BaseModel):
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    cron: str
    nodes: str = ""
    command: str | None = None
    action: str = Field("command", pattern="^(command|ping|facts|metrics)$")


class DrainIn(BaseModel):
    reason: str = ""


class ProvisionIn(BaseModel):
    name: str
    pool: str = "default"


def node_json(n: Node, ctl: Controller, full: bool = False) -> dict[str, Any]:
    hb = max(filter(None, [n.last_heartbeat, ctl.last_hb.get(n.name)]), default=None)
    d: dict[str, Any] = {
        "name": n.name,
        "state": n.state,
        "pool": n.pool,
        "cpus": n.cpus,
        "memory": n.memory,
        "address": n.address,
        "last_heartbeat": hb.isoformat() if hb else None,
        "state_since": n.state_since.isoformat(),
        "generation": n.generation,
    }
    if full:
        d["facts"] = n.facts or {}
        d["created_at"] = n.created_at.isoformat()
        d["registered_at"] = n.registered_at.isoformat() if n.registered_at else None
    return d


def event_json(e: Event) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": e.at.isoformat(),
        "node": e.node,
        "kind": e.kind,
        "from": e.from_state,
        "to": e.to_state,
        "actor": e.actor,
        "reason": e.reason,
    }


def sender(insecure: bool, client: Any, claimed: str | None) -> str | None:
    """Who sent a request: the CN of the certificate verified on its connection
    (``client`` is its (host, port)), or with --insecure what X-Shoal-Name claims."""
    if insecure:
        return "insecure" if claimed is None else claimed
    return PEERS.get((client[0], client[1])) if client else None


def acts_as(insecure: bool, who: str | None, name: str) -> bool:
    """A node may register and heartbeat only as its own certificate's name."""
    return insecure or who == name


def build_app(ctl: Controller, insecure: bool = False) -> Any:
    """The ASGI app: FastAPI, behind the heartbeat fast path."""
    return HeartbeatFastPath(build_api(ctl, insecure), ctl, insecure)


def build_api(ctl: Controller, insecure: bool = False) -> FastAPI:
    app = FastAPI(title="shoal controller", version="1")

    def caller(request: Request) -> str:
        c = request.client
        who = sender(insecure, (c.host, c.port) if c else None, request.headers.get("x-shoal-name"))
        if who is None or (not who and not insecure):
            raise HTTPException(401, "no verified client certificate")
        return who

    def self_only(request: Request, name: str) -> str:
        who = caller(request)
        if not acts_as(insecure, who, name):
            raise HTTPException(403, f"certificate {who!r} may not act as node {name!r}")
        return who

    @app.exception_handler(DBAPIError)
    async def _db(_r: Request, e: DBAPIError) -> JSONResponse:
        ctl.db_ok = False
        return JSONResponse({"detail": "database unavailable, retry later"}, status_code=503)

    @app.exception_handler(UsageError)
    async def _usage(_r: Request, e: UsageError) -> JSONResponse:
        return JSONResponse({"detail": e.message}, status_code=422)

    @app.post("/v1/register", summary="Register a node with its facts (idempotent)")
    async def register(body: RegisterIn, request: Request) -> dict[str, Any]:
        self_only(request, body.name)
        n = await ctl.register(body.name, body.facts, body.pool)
        return node_json(n, ctl)

    @app.post("/v1/heartbeat", summary="Heartbeat (buffered, flushed in batches)")
    async def heartbeat(body: HeartbeatIn, request: Request) -> dict[str, Any]:
        self_only(request, body.name)
        if body.name not in ctl.last_hb:
            async with ctl.session() as sess:
                if await sess.get(Node, body.name) is None:
                    raise HTTPException(404, f"node {body.name} is not registered")
        if ctl.s.naive_heartbeats:
            await ctl.write_heartbeat_now(body.name)
        else:
            ctl.heartbeat(body.name)
        return {"ok": True}

    @app.get("/v1/nodes", summary="List nodes")
    async def nodes(request: Request, state: str | None = None) -> list[dict[str, Any]]:
        caller(request)
        async with ctl.session() as sess:
            q = select(Node).order_by(Node.name)
            if state:
                q = q.where(Node.state == state)
            return [node_json(n, ctl) for n in (await sess.execute(q)).scalars()]

    @app.get("/v1/nodes/{name}", summary="One node: facts and event history")
    async def node(name: str, request: Request) -> dict[str, Any]:
        caller(request)
        async with ctl.session() as sess:
            n = await sess.get(Node, name)
            if n is None:
                raise HTTPException(404, f"no node {name}")
            evs = (
                await sess.execute(
                    select(Event).where(Event.node == name).order_by(Event.id.desc()).limit(200)
                )
            ).scalars()
            d = node_json(n, ctl, full=True)
            d["events"] = [event_json(e) for e in evs]
            return d

    @app.post("/v1/nodes", summary="Record a provisioned host that must register in time")
    async def provision(body: ProvisionIn, request: Request) -> dict[str, Any]:
        who = caller(request)
        await ctl.provision(body.name, body.pool, who)
        return {"ok": True}

    @app.post("/v1/nodes/{name}/drain", summary="Drain a node")
    async def drain(name: str, body: DrainIn, request: Request) -> dict[str, Any]:
        n = await ctl.set_drain(name, True, caller(request), body.reason)
        if n is None:
            raise HTTPException(404, f"no node {name}")
        return node_json(n, ctl)

    @app.post("/v1/nodes/{name}/undrain", summary="Return a drained node to service")
    async def undrain(name: str, body: DrainIn, request: Request) -> dict[str, Any]:
        n = await ctl.set_drain(name, False, caller(request), body.reason)
        if n is None:
            raise HTTPException(404, f"no node {name}")
        return node_json(n, ctl)

    @app.get("/v1/events", summary="Events, newest last")
    async def events(
        request: Request,
        since: float = Query(3600.0, description="seconds back"),
        node: str | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        caller(request)
        t = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=since)
        async with ctl.session() as sess:
            q = select(Event).where(Event.at >= t)
            if node:
                q = q.where(Event.node == node)
            q = q.order_by(Event.id.desc()).limit(limit)
            return [event_json(e) for e in reversed((await sess.execute(q)).scalars().all())]

    @app.post("/v1/jobs", summary="Add or replace a cron job")
    async def add_job(body: JobIn, request: Request) -> dict[str, Any]:
        who = caller(request)
        sched = cronspec.parse(body.cron)  # UsageError -> 422 naming the field
        if body.action == "command" and not body.command:
            raise HTTPException(422, "a command job needs a command")
        if body.action in ("command", "ping", "facts") and not body.nodes:
            raise HTTPException(422, "this job needs a node set (-w)")
        now = dt.datetime.now(dt.UTC)
        async with ctl.session() as sess, sess.begin():
            j = await sess.get(Job, body.name)
            if j is None:
                j = Job(name=body.name, created_at=now)
                sess.add(j)
            j.cron, j.nodes, j.command, j.action = body.cron, body.nodes, body.command, body.action
            j.last_scheduled = now
            ctl.event(sess, None, "job-added", who, f"{body.name}: {body.cron}")
        return {"name": body.name, "next": sched.next_after(now).isoformat()}

    @app.get("/v1/jobs", summary="List jobs")
    async def jobs(request: Request) -> list[dict[str, Any]]:
        caller(request)
        async with ctl.session() as sess:
            out = []
            for j in (await sess.execute(select(Job).order_by(Job.name))).scalars():
                base = j.last_scheduled or j.created_at
                out.append(
                    {
                        "name": j.name,
                        "cron": j.cron,
                        "nodes": j.nodes,
                        "action": j.action,
                        "command": j.command,
                        "next": cronspec.parse(j.cron).next_after(base).isoformat(),
                        "running": j.name in ctl.running_jobs
                        and not ctl.running_jobs[j.name].done(),
                    }
                )
            return out

    @app.delete("/v1/jobs/{name}", summary="Remove a job (its history stays)")
    async def rm_job(name: str, request: Request) -> dict[str, Any]:
        who = caller(request)
        async with ctl.session() as sess, sess.begin():
            j = await sess.get(Job, name)
            if j is None:
                raise HTTPException(404, f"no job {name}")
            await sess.delete(j)
            ctl.event(sess, None, "job-removed", who, name)
        return {"ok": True}

    @app.get("/v1/jobs/{name}/runs", summary="A job's run history, newest first")
    async def runs(name: str, request: Request, limit: int = 100) -> list[dict[str, Any]]:
        caller(request)
        async with ctl.session() as sess:
            q = select(JobRun).where(JobRun.job == name).order_by(JobRun.id.desc()).limit(limit)
            return [
                {
                    "id": r.id,
                    "scheduled_at": r.scheduled_at.isoformat(),
                    "started_at": r.started_at.isoformat() if r.started_at else None,
                    "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                    "status": r.status,
                    "coalesced": r.coalesced,
                    "detail": r.detail,
                }
                for r in (await sess.execute(q)).scalars()
            ]

    @app.get("/healthz", summary="200 when the database answers, 503 otherwise")
    async def healthz() -> JSONResponse:
        ok, why = await ctl.healthy()
        return JSONResponse(
            {"ok": ok, "detail": why, "pending_heartbeats": len(ctl.pending_hb)},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        from shoal.fleet.metrics import render

        return PlainTextResponse(await render(ctl), media_type="text/plain; version=0.0.4")

    _ = STATES
    return app


HEARTBEAT = "/v1/heartbeat"
_OK = b'{"ok":true}'


class HeartbeatFastPath:
    """Answers the steady-state heartbeat (a known node, sent as itself) without
    FastAPI's routing, validation and middleware: at 10,000 nodes every 10 s
    those cost ~0.5 ms of the event loop per heartbeat, which queued every
    other request behind them. Anything else (an unknown node, a bad body, the
    wrong certificate, naive mode) goes to the FastAPI route, which owns the
    answers and the OpenAPI description."""

    MAX_BODY = 4096

    def __init__(self, api: FastAPI, ctl: Controller, insecure: bool) -> None:
        self.api = api
        self.ctl = ctl
        self.insecure = insecure

    def __getattr__(self, name: str) -> Any:  # openapi(), routes, state ...
        return getattr(self.api, name)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != HEARTBEAT
            or scope["method"] != "POST"
            or self.ctl.s.naive_heartbeats
        ):
            await self.api(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":  # client gone
                return
            chunks.append(msg.get("body", b""))
            size += len(chunks[-1])
            if not msg.get("more_body") or size > self.MAX_BODY:
                break
        body = b"".join(chunks)
        name = self._known_sender(scope, body) if not msg.get("more_body") else None
        if name is None:
            await self.api(scope, _replay(body, msg.get("more_body", False), receive), send)
            return
        self.ctl.heartbeat(name)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(_OK)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": _OK})

    def _known_sender(self, scope: Any, body: bytes) -> str | None:
        try:
            name = json.loads(body).get("name")
        except (ValueError, AttributeError):
            return None
        if not isinstance(name, str) or name not in self.ctl.last_hb:
            return None
        claimed = dict(scope.get("headers") or []).get(b"x-shoal-name")
        who = sender(
            self.insecure,
            scope.get("client"),
            None if claimed is None else claimed.decode("latin-1"),
        )
        return name if acts_as(self.insecure, who, name) else None


def _replay(body: bytes, more: bool, receive: Any) -> Any:
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replay
