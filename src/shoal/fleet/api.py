"""The controller's HTTP API (FastAPI; OpenAPI at /openapi.json, docs at /docs).

Behind mutual TLS: who may call what is in access.py (a node registers and
heartbeats as itself; operators read and change the fleet); the bodies are
in apimodels.py; the ASGI front (asgi.py) bounds and checks every body.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import select

from shoal.errors import UsageError
from shoal.fleet import cronspec
from shoal.fleet.access import Access
from shoal.fleet.apimodels import NAME, DrainIn, HeartbeatIn, JobIn, ProvisionIn, RegisterIn
from shoal.fleet.asgi import Front
from shoal.fleet.controller import STATES, Controller
from shoal.fleet.db import Event, Job, JobRun, Node
from shoal.fleet.dbhealth import DB_ERRORS

MAX_SINCE = 100 * 366 * 86400.0  # seconds back: a century
Since = Annotated[float, Query(ge=0, le=MAX_SINCE, allow_inf_nan=False, description="seconds back")]
Limit = Annotated[int, Query(ge=1, le=10000)]
State = Annotated[str | None, Query(pattern="^(" + "|".join(STATES) + ")$")]
NodeName = Annotated[str | None, Query(pattern=NAME)]


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


def build_app(ctl: Controller, insecure: bool = False) -> Any:
    """The ASGI app: FastAPI, behind the bounded-body front and heartbeat fast path."""
    return Front(build_api(ctl, insecure), ctl, insecure)


def build_api(ctl: Controller, insecure: bool = False) -> FastAPI:
    app = FastAPI(title="shoal controller", version="1")
    acc = Access(insecure)

    async def _db(r: Request, e: Exception) -> JSONResponse:
        ctl.health.failed(e, writing=r.method not in ("GET", "HEAD"))
        return JSONResponse(
            {"detail": f"database unavailable, retry later ({ctl.health.why()})"},
            status_code=503,
        )

    for exc in DB_ERRORS:
        app.add_exception_handler(exc, _db)

    @app.exception_handler(UsageError)
    async def _usage(_r: Request, e: UsageError) -> JSONResponse:
        return JSONResponse({"detail": e.message}, status_code=400)

    @app.post("/v1/register", summary="Register a node with its facts (idempotent)")
    async def register(body: RegisterIn, request: Request) -> dict[str, Any]:
        acc.as_node(request, body.name)
        facts = body.facts.model_dump(exclude_unset=True)
        n = await ctl.register(body.name, facts, body.pool)
        return node_json(n, ctl)

    @app.post("/v1/heartbeat", summary="Heartbeat (buffered, flushed in batches)")
    async def heartbeat(body: HeartbeatIn, request: Request) -> dict[str, Any]:
        acc.as_node(request, body.name)
        if body.name not in ctl.last_hb:
            async with ctl.session() as sess:
                if await sess.get(Node, body.name) is None:
                    raise HTTPException(404, f"node {body.name} is not registered")
        ctl.heartbeat(body.name)
        return {"ok": True}

    @app.get("/v1/nodes", summary="List nodes")
    async def nodes(request: Request, state: State = None) -> list[dict[str, Any]]:
        acc.reader(request)
        async with ctl.session() as sess:
            q = select(Node).order_by(Node.name)
            if state:
                q = q.where(Node.state == state)
            return [node_json(n, ctl) for n in (await sess.execute(q)).scalars()]

    @app.get("/v1/nodes/{name}", summary="One node: facts and event history")
    async def node(name: str, request: Request) -> dict[str, Any]:
        acc.reader(request)
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
        who = acc.operator(request)
        await ctl.provision(body.name, body.pool, who.name)
        return {"ok": True}

    @app.post("/v1/nodes/{name}/drain", summary="Drain a node")
    async def drain(name: str, body: DrainIn, request: Request) -> dict[str, Any]:
        who = acc.operator(request)
        n = await ctl.set_drain(name, True, who.name, body.reason)
        if n is None:
            raise HTTPException(404, f"no node {name}")
        return node_json(n, ctl)

    @app.post("/v1/nodes/{name}/undrain", summary="Return a drained node to service")
    async def undrain(name: str, body: DrainIn, request: Request) -> dict[str, Any]:
        who = acc.operator(request)
        n = await ctl.set_drain(name, False, who.name, body.reason)
        if n is None:
            raise HTTPException(404, f"no node {name}")
        return node_json(n, ctl)

    @app.get("/v1/events", summary="Events, newest last")
    async def events(
        request: Request, since: Since = 3600.0, node: NodeName = None, limit: Limit = 1000
    ) -> list[dict[str, Any]]:
        acc.reader(request)
        t = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=since)
        async with ctl.session() as sess:
            q = select(Event).where(Event.at >= t)
            if node:
                q = q.where(Event.node == node)
            q = q.order_by(Event.id.desc()).limit(limit)
            return [event_json(e) for e in reversed((await sess.execute(q)).scalars().all())]

    @app.post("/v1/jobs", summary="Add or replace a cron job")
    async def add_job(body: JobIn, request: Request) -> dict[str, Any]:
        who = acc.operator(request)
        sched = cronspec.parse(body.cron)  # UsageError -> 400 saying why
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
            ctl.event(sess, None, "job-added", who.name, f"{body.name}: {body.cron}")
        ctl.health.wrote()
        ctl.broken_jobs.pop(body.name, None)
        return {"name": body.name, "next": sched.next_after(now).isoformat()}

    @app.get("/v1/jobs", summary="List jobs")
    async def jobs(request: Request) -> list[dict[str, Any]]:
        acc.reader(request)
        async with ctl.session() as sess:
            out = []
            for j in (await sess.execute(select(Job).order_by(Job.name))).scalars():
                nxt, error = ctl.next_run(j)
                out.append(
                    {
                        "name": j.name,
                        "cron": j.cron,
                        "nodes": j.nodes,
                        "action": j.action,
                        "command": j.command,
                        "next": nxt.isoformat() if nxt else None,
                        "error": error,
                        "running": j.name in ctl.running_jobs
                        and not ctl.running_jobs[j.name].done(),
                    }
                )
            return out

    @app.delete("/v1/jobs/{name}", summary="Remove a job (its history stays)")
    async def rm_job(name: str, request: Request) -> dict[str, Any]:
        who = acc.operator(request)
        async with ctl.session() as sess, sess.begin():
            j = await sess.get(Job, name)
            if j is None:
                raise HTTPException(404, f"no job {name}")
            await sess.delete(j)
            ctl.event(sess, None, "job-removed", who.name, name)
        ctl.health.wrote()
        ctl.broken_jobs.pop(name, None)
        return {"ok": True}

    @app.get("/v1/jobs/{name}/runs", summary="A job's run history, newest first")
    async def runs(name: str, request: Request, limit: Limit = 100) -> list[dict[str, Any]]:
        acc.reader(request)
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

    @app.get("/healthz", summary="200 when the database answers and takes writes, 503 otherwise")
    async def healthz(request: Request) -> JSONResponse:
        acc.caller(request)
        ok, why = await ctl.healthy()
        return JSONResponse(
            {"ok": ok, "detail": why, "pending_heartbeats": len(ctl.pending_hb)},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics(request: Request) -> PlainTextResponse:
        from shoal.fleet.metrics import render

        acc.caller(request)
        text = render(await ctl.snapshot())
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    return app
