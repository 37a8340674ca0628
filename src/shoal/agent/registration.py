"""The agent's side of the controller API: register with facts, then heartbeat.

Speaks HTTPS with the agent's own identity (mutual TLS, cluster CA). Facts
are the node's own (agent/facts.py, the same as ``shoal facts``) plus cloud
metadata when a metadata service answers within a short timeout (Alibaba
Cloud, AWS IMDSv2, GCP, Azure); each base URL is a setting (``metadata_*``,
core/config.py) so tests point them at local servers.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from shoal.agent.cgroups import Host
from shoal.core.config import Settings
from shoal.core.tls import Identity

log = logging.getLogger("shoal.agent.registration")


@dataclass
class MetadataEndpoints:
    alibaba: str | None = "http://100.100.100.200"
    aws: str | None = "http://169.254.169.254"
    gcp: str | None = "http://metadata.google.internal"
    azure: str | None = "http://169.254.169.254"
    timeout: float = 0.5

    @classmethod
    def from_settings(cls, s: Settings) -> MetadataEndpoints:
        """metadata_<cloud> (SHOAL_METADATA_<CLOUD>) is a URL or ``off``;
        metadata = off (SHOAL_METADATA=off): none at all."""
        if not s.metadata:
            return cls(None, None, None, None)

        def url(v: str) -> str | None:
            return None if v in ("", "off") else v.rstrip("/")

        return cls(
            url(s.metadata_alibaba), url(s.metadata_aws), url(s.metadata_gcp), url(s.metadata_azure)
        )


async def cloud_metadata(ep: MetadataEndpoints) -> dict[str, str]:
    """Instance id, private IP etc. from the first metadata service that answers."""
    import httpx

    async def alibaba(c: httpx.AsyncClient) -> dict[str, str]:
        b = f"{ep.alibaba}/latest/meta-data"
        out = {"cloud": "alibaba"}
        for k, p in (
            ("instance_id", "instance-id"),
            ("private_ip", "private-ipv4"),
            ("region", "region-id"),
            ("instance_type", "instance/instance-type"),
        ):
            r = await c.get(f"{b}/{p}")
            if r.status_code == 200:
                out[k] = r.text.strip()
        if "instance_id" not in out:
            raise ValueError("no instance id")
        return out

    async def aws(c: httpx.AsyncClient) -> dict[str, str]:
        t = await c.put(
            f"{ep.aws}/latest/api/token",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
        )
        t.raise_for_status()
        h = {"X-aws-ec2-metadata-token": t.text}
        out = {"cloud": "aws"}
        for k, p in (
            ("instance_id", "instance-id"),
            ("private_ip", "local-ipv4"),
            ("instance_type", "instance-type"),
            ("zone", "placement/availability-zone"),
        ):
            r = await c.get(f"{ep.aws}/latest/meta-data/{p}", headers=h)
            if r.status_code == 200:
                out[k] = r.text.strip()
        if "instance_id" not in out:
            raise ValueError("no instance id")
        return out

    async def gcp(c: httpx.AsyncClient) -> dict[str, str]:
        h = {"Metadata-Flavor": "Google"}
        b = f"{ep.gcp}/computeMetadata/v1/instance"
        r = await c.get(f"{b}/id", headers=h)
        r.raise_for_status()
        out = {"cloud": "gcp", "instance_id": r.text.strip()}
        for k, p in (
            ("zone", "zone"),
            ("instance_type", "machine-type"),
            ("private_ip", "network-interfaces/0/ip"),
        ):
            r = await c.get(f"{b}/{p}", headers=h)
            if r.status_code == 200:
                out[k] = r.text.strip().rsplit("/", 1)[-1]
        return out

    async def azure(c: httpx.AsyncClient) -> dict[str, str]:
        r = await c.get(
            f"{ep.azure}/metadata/instance",
            params={"api-version": "2021-02-01"},
            headers={"Metadata": "true"},
        )
        r.raise_for_status()
        d = r.json()["compute"]
        out = {
            "cloud": "azure",
            "instance_id": str(d["vmId"]),
            "instance_type": str(d.get("vmSize", "")),
            "zone": str(d.get("location", "")),
        }
        return out

    probes = [
        (f, u)
        for f, u in ((alibaba, ep.alibaba), (gcp, ep.gcp), (azure, ep.azure), (aws, ep.aws))
        if u
    ]
    if not probes:
        return {}
    async with httpx.AsyncClient(timeout=ep.timeout, trust_env=False) as c:
        # all at once (off a cloud every probe waits out its timeout), the
        # first that answered in this order wins
        got = await asyncio.gather(
            *(asyncio.wait_for(fn(c), ep.timeout * 4) for fn, _ in probes),
            return_exceptions=True,
        )
    return next((g for g in got if isinstance(g, dict)), {})


async def collect_facts(
    name: str, ep: MetadataEndpoints | None = None, host: Host | None = None
) -> dict[str, Any]:
    """The node's facts (agent/facts.py, as ``shoal facts`` has them) in the
    controller's keys, with cloud metadata under ``extra``."""
    from shoal.agent.facts import collect_facts as node_facts
    from shoal.agent.facts import registration_facts

    facts = registration_facts(node_facts(host or Host.detect()))
    facts["name"] = name
    extra = await cloud_metadata(ep or MetadataEndpoints.from_settings(Settings.load()))
    if extra:
        facts["extra"] = extra
    return facts


def _client(controller_url: str, identity: Identity | None, timeout: float = 10.0) -> Any:
    import httpx

    from shoal.core.tls import client_context

    if identity is None or controller_url.startswith("http://"):
        return httpx.AsyncClient(base_url=controller_url, timeout=timeout, trust_env=False)
    ctx = client_context(identity)
    return httpx.AsyncClient(base_url=controller_url, verify=ctx, timeout=timeout, trust_env=False)


@dataclass
class RegistrationState:
    registered: bool = False
    heartbeats: int = 0
    errors: list[str] = field(default_factory=list)


async def run_registration(
    controller_url: str,
    identity: Identity | None,
    name: str,
    interval: float,
    stop_event: asyncio.Event,
    pool: str | None = None,
    metadata: MetadataEndpoints | None = None,
    state: RegistrationState | None = None,
    host: Host | None = None,
) -> RegistrationState:
    """Register (retrying with back-off), then heartbeat every ``interval`` until stopped.

    A 404 on heartbeat (the controller forgot us) triggers a new registration.
    """
    st = state or RegistrationState()
    facts = await collect_facts(name, metadata, host)
    headers = {"x-shoal-name": name}
    delay = 1.0
    async with _client(controller_url, identity) as c:
        while not stop_event.is_set():
            try:
                if not st.registered:
                    r = await c.post(
                        "/v1/register",
                        json={"name": name, "pool": pool, "facts": facts},
                        headers=headers,
                    )
                    r.raise_for_status()
                    st.registered = True
                    delay = 1.0
                else:
                    r = await c.post("/v1/heartbeat", json={"name": name}, headers=headers)
                    if r.status_code == 404:
                        st.registered = False
                        continue
                    r.raise_for_status()
                    st.heartbeats += 1
                wait = interval
            except Exception as e:
                st.errors.append(f"{type(e).__name__}: {e}"[:200])
                del st.errors[:-20]
                wait = delay
                delay = min(delay * 2, 30.0)
            try:
                await asyncio.wait_for(stop_event.wait(), wait)
            except TimeoutError:
                pass
    return st
