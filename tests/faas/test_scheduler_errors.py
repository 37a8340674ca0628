"""The scheduler's answers to bad calls, over its real gRPC server with mutual
TLS: unknown function, a memory request larger than a node, a ReturnContainer
for an unknown or already returned request, a caller without an operator's
certificate, a functions file with a mistake, and no node to run on (calls
wait up to their time-out, then fail saying why)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from agentproc import free_port

from shoal.core import tls
from shoal.core.config import Settings
from shoal.core.wire.shoal.v1 import faas_pb2 as xpb
from shoal.core.wire.shoal.v1 import faas_pb2_grpc as xrpc
from shoal.errors import UsageError
from shoal.faas.policy import FixedTTL
from shoal.faas.scheduler import Options
from shoal.faas.service import Running, load_functions, start_scheduler


def _ca(home: Path) -> Path:
    d = home / "tls"
    tls.init_ca(d)
    tls.issue(d, tls.CLIENT_NAME, role=tls.OPERATOR)
    tls.issue(d, "n1")  # a node's certificate
    return d


@pytest.fixture
async def dead_scheduler(shoal_home: Path) -> AsyncIterator[Running]:
    """A scheduler whose one node is a closed loopback port."""
    _ca(shoal_home)
    (shoal_home / "inventory.toml").write_text(f'[nodes]\ndead = "127.0.0.1:{free_port()}"\n')
    r = await start_scheduler(
        "dead",
        FixedTTL(600),
        settings=Settings.load(),
        node_memory=512 << 20,
        options=Options(nodes=1, max_nodes=1, poll_s=0.2),
    )
    yield r
    await r.stop()


def _stub(home: Path, port: int, cert: str = tls.CLIENT_NAME) -> tuple[grpc.aio.Channel, object]:
    d = home / "tls"
    ident = tls.Identity(d / "ca.crt", d / f"{cert}.crt", d / f"{cert}.key")
    ch = grpc.aio.secure_channel(
        f"127.0.0.1:{port}",
        tls.channel_credentials(ident),
        options=[("grpc.ssl_target_name_override", tls.CLIENT_NAME)],
    )
    return ch, xrpc.SchedulerStub(ch)


def _acquire(rid: str, name: str, **config: object) -> xpb.AcquireContainerRequest:
    req = xpb.AcquireContainerRequest(request_id=rid, function_name=name)
    if config:
        req.function_config.CopyFrom(xpb.FunctionConfig(**config))  # type: ignore[arg-type]
    return req


async def test_bad_calls_get_a_status_and_a_reason(
    dead_scheduler: Running, shoal_home: Path
) -> None:
    ch, stub = _stub(shoal_home, dead_scheduler.served.port)
    async with ch:
        cases = [
            (_acquire("r1", "nope"), grpc.StatusCode.NOT_FOUND, "unknown function 'nope'"),
            (
                _acquire("r2", "big", handler="m:f", memory_in_bytes=1 << 30),
                grpc.StatusCode.INVALID_ARGUMENT,
                "asks 1024 MiB; a node has 512 MiB",
            ),
            (
                _acquire("", "f", handler="m:f", memory_in_bytes=1 << 20),
                grpc.StatusCode.INVALID_ARGUMENT,
                "request_id",
            ),
        ]
        for req, code, text in cases:
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await stub.AcquireContainer(req)  # type: ignore[attr-defined]
            assert e.value.code() == code and text in (e.value.details() or ""), e.value
        with pytest.raises(grpc.aio.AioRpcError) as e:
            ret = xpb.ReturnContainerRequest(request_id="never", container_id="c1")
            await stub.ReturnContainer(ret)  # type: ignore[attr-defined]
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        assert "no container is held by request 'never'" in (e.value.details() or "")
    assert dead_scheduler.scheduler.usage()["in_flight"] == 0


async def test_a_node_certificate_may_not_call(dead_scheduler: Running, shoal_home: Path) -> None:
    ch, stub = _stub(shoal_home, dead_scheduler.served.port, cert="n1")
    async with ch:
        with pytest.raises(grpc.aio.AioRpcError) as e:
            req = _acquire("r1", "f", handler="echo hi", memory_in_bytes=1 << 20)
            await stub.AcquireContainer(req)  # type: ignore[attr-defined]
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "not a node certificate" in (e.value.details() or "")
    assert dead_scheduler.scheduler.stats.acquired == 0


async def test_with_no_node_to_run_on_a_call_waits_its_time_out_then_fails(
    dead_scheduler: Running, shoal_home: Path
) -> None:
    ch, stub = _stub(shoal_home, dead_scheduler.served.port)
    async with ch:
        with pytest.raises(grpc.aio.AioRpcError) as e:
            req = _acquire("r1", "f", handler="cat", memory_in_bytes=64 << 20, timeout_in_ms=1500)
            await stub.AcquireContainer(req)  # type: ignore[attr-defined]
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "no container for f within its time-out of 1500 ms" in (e.value.details() or "")
    s = dead_scheduler.scheduler
    assert s.stats.errors == 1 and s.usage()["in_flight"] == 0 and not s.calls
    assert s.nodes == {}  # the dead node was let go


def test_a_functions_file_with_a_mistake_is_refused_with_where(tmp_path: Path) -> None:
    f = tmp_path / "functions.toml"
    cases = {
        '[functions.a]\nhandler = "m:f"\nmemroy_mb = 1\n': "[functions.a]: unknown key(s) memroy",
        '[functions.a]\nhandler = "m:f"\nmemory_mb = 0\n': "memory_mb must be a positive integer",
        "[functions.a]\nmemory_mb = 64\n": "handler (module:function or a command) is required",
        '[functions.a]\nhandler = "m:f"\ncode = "nowhere"\n': "is not a directory",
        '[function.a]\nhandler = "m:f"\n': "unknown table(s) function",
    }
    for text, why in cases.items():
        f.write_text(text)
        with pytest.raises(UsageError) as e:
            load_functions(f)
        assert why in e.value.message, (text, e.value.message)
    (tmp_path / "src").mkdir()
    f.write_text('[functions.a]\nhandler = "m:f"\nmemory_mb = 64\ncode = "src"\n')
    fns, code = load_functions(f, "/var/tmp/x")
    assert [(x.name, x.memory, x.code_dir) for x in fns] == [("a", 64 << 20, "/var/tmp/x/a/src")]
    assert code == {"a": tmp_path / "src"}


async def test_a_function_keeps_the_handler_it_was_first_called_with(
    dead_scheduler: Running, shoal_home: Path
) -> None:
    ch, stub = _stub(shoal_home, dead_scheduler.served.port)
    async with ch:
        with pytest.raises(grpc.aio.AioRpcError) as e:  # no node: it waits 0.3 s
            req = _acquire("r1", "g", handler="cat", memory_in_bytes=1 << 20, timeout_in_ms=300)
            await stub.AcquireContainer(req)  # type: ignore[attr-defined]
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(grpc.aio.AioRpcError) as e:
            req = _acquire("r2", "g", handler="rm -rf /tmp/x", memory_in_bytes=1 << 20)
            await stub.AcquireContainer(req)  # type: ignore[attr-defined]
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "has handler 'cat', the call names 'rm -rf /tmp/x'" in (e.value.details() or "")
