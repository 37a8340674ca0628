"""Who may call the scheduler's services, and how a SchedulingError goes on
the wire. With TLS only an operator's or the controller's certificate may
call: a function's handler is code the agents will run."""

from __future__ import annotations

import logging
from typing import Any, NoReturn

import grpc

from shoal.core import tls
from shoal.errors import SchedulingError

log = logging.getLogger("shoal.faas")


async def admit(context: grpc.aio.ServicerContext[Any, Any], secure: bool) -> None:
    if not secure:
        return
    auth = dict(context.auth_context())
    role = tls.peer_role(auth)
    if role not in tls.COMMANDERS:
        peer = tls.peer_name(auth) or context.peer()
        log.warning("refused a call from %s (role %s)", peer, role)
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED,
            f"only an operator or the controller may call the scheduler, not a {role} certificate",
        )


async def abort(context: grpc.aio.ServicerContext[Any, Any], e: SchedulingError) -> NoReturn:
    await context.abort(getattr(grpc.StatusCode, e.status, grpc.StatusCode.UNKNOWN), e.message)
    raise AssertionError("unreachable: abort raises")
