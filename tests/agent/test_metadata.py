"""Cloud metadata at registration: real HTTP servers speaking each cloud's
metadata protocol on loopback (IMDSv2's token, GCP's and Azure's headers)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from shoal.agent.registration import MetadataEndpoints, cloud_metadata

TOKEN = "tok-123"


def aws_app() -> web.Application:
    async def token(r: web.Request) -> web.Response:
        if not r.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return web.Response(status=400)
        return web.Response(text=TOKEN)

    async def meta(r: web.Request) -> web.Response:
        if r.headers.get("X-aws-ec2-metadata-token") != TOKEN:
            return web.Response(status=401)  # IMDSv2 only: no token, no data
        values = {
            "instance-id": "i-0abc",
            "local-ipv4": "10.0.0.7",
            "instance-type": "c6i.large",
            "placement/availability-zone": "eu-west-1a",
        }
        v = values.get(r.match_info["path"])
        return web.Response(text=v) if v else web.Response(status=404)

    app = web.Application()
    app.router.add_put("/latest/api/token", token)
    app.router.add_get("/latest/meta-data/{path:.+}", meta)
    return app


def gcp_app() -> web.Application:
    async def meta(r: web.Request) -> web.Response:
        if r.headers.get("Metadata-Flavor") != "Google":
            return web.Response(status=403)
        values = {
            "id": "4711",
            "zone": "projects/1/zones/europe-west1-b",
            "machine-type": "projects/1/machineTypes/n2-standard-2",
            "network-interfaces/0/ip": "10.1.0.3",
        }
        v = values.get(r.match_info["path"])
        return web.Response(text=v) if v else web.Response(status=404)

    app = web.Application()
    app.router.add_get("/computeMetadata/v1/instance/{path:.+}", meta)
    return app


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def test_aws_imdsv2_with_its_token() -> None:
    async def main() -> dict[str, str]:
        async with serve(aws_app()) as url:
            return await cloud_metadata(MetadataEndpoints(None, url, None, None))

    assert asyncio.run(main()) == {
        "cloud": "aws",
        "instance_id": "i-0abc",
        "private_ip": "10.0.0.7",
        "instance_type": "c6i.large",
        "zone": "eu-west-1a",
    }


def test_first_cloud_that_answers_wins_and_dead_ones_are_skipped() -> None:
    async def main() -> dict[str, str]:
        async with serve(gcp_app()) as gcp, serve(web.Application()) as empty:
            # alibaba: nothing listening; gcp: answers; azure: 404; aws: 404
            ep = MetadataEndpoints(closed_port(), empty, gcp, empty)
            return await cloud_metadata(ep)

    assert asyncio.run(main()) == {
        "cloud": "gcp",
        "instance_id": "4711",
        "zone": "europe-west1-b",
        "instance_type": "n2-standard-2",
        "private_ip": "10.1.0.3",
    }


def test_no_cloud_gives_no_metadata() -> None:
    ep = MetadataEndpoints(closed_port(), closed_port(), closed_port(), closed_port(), 0.2)
    assert asyncio.run(cloud_metadata(ep)) == {}
