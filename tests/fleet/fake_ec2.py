"""A fake Amazon EC2 endpoint for tests: a real HTTP server speaking the EC2
Query API (API version 2016-11-15) for the actions a compute driver needs to
create, list and terminate instances, and checking every request's AWS
Signature Version 4 against its one key pair, as EC2 does.

Instances live in memory; a terminated one stays listed in state
"terminated", as on EC2. `calls` records (action, instance name) in order.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit
from xml.sax.saxutils import escape

from local_http import LocalHTTPServer

NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
IMAGES = {"ami-0shoal": "shoal-agent-2026.11"}
ZONES = ("us-east-1a", "us-east-1b")
STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48}


class EC2Error(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class FakeEC2(LocalHTTPServer):
    def __init__(self, access_key: str, secret: str, region: str = "us-east-1") -> None:
        self.access_key, self.secret, self.region = access_key, secret, region
        self.instances: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._answer(self, urlsplit(self.path).query, b"")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake._answer(self, body.decode(), body)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(Handler)

    def live(self, name: str) -> list[str]:
        return [
            i for i, x in self.instances.items() if x["name"] == name and x["state"] == "running"
        ]

    # ---- HTTP -------------------------------------------------------------
    def _answer(self, h: BaseHTTPRequestHandler, query: str, body: bytes) -> None:
        params = dict(parse_qsl(query, keep_blank_values=True))
        try:
            self._check_signature(h, params, body)
            action = params.get("Action", "")
            fn = getattr(self, f"_{action}", None)
            if fn is None:
                raise EC2Error(400, "InvalidAction", f"The action {action} is not valid")
            with self._lock:
                inner = fn(params)
            status, xml = 200, f'<{action}Response xmlns="{NS}"><requestId>r-1</requestId>'
            xml += f"{inner}</{action}Response>"
        except EC2Error as e:
            status = e.status
            xml = (
                f"<Response><Errors><Error><Code>{e.code}</Code><Message>{escape(e.message)}"
                "</Message></Error></Errors><RequestID>r-1</RequestID></Response>"
            )
        data = ('<?xml version="1.0" encoding="UTF-8"?>\n' + xml).encode()
        h.send_response(status)
        h.send_header("Content-Type", "text/xml;charset=UTF-8")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _check_signature(
        self, h: BaseHTTPRequestHandler, params: dict[str, str], body: bytes
    ) -> None:
        """AWS Signature Version 4 (the documented algorithm, computed here anew)."""
        auth = h.headers.get("Authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            raise EC2Error(401, "AuthFailure", "AWS was not able to validate the credentials")
        fields = dict(
            p.strip().split("=", 1) for p in auth.removeprefix("AWS4-HMAC-SHA256 ").split(",")
        )
        key, date, region, service, _ = fields["Credential"].split("/")
        if key != self.access_key:
            raise EC2Error(401, "AuthFailure", "The access key ID is not known")
        signed = fields["SignedHeaders"]
        method = h.command
        path = urlsplit(h.path).path
        query = params if method == "GET" else {}
        canonical_query = "&".join(
            f"{quote(k, safe='')}={quote(v, safe='~')}" for k, v in sorted(query.items())
        )
        headers = "".join(f"{n}:{(h.headers.get(n) or '').strip()}\n" for n in signed.split(";"))
        payload = h.headers.get("X-AMZ-Content-SHA256") or hashlib.sha256(body).hexdigest()
        request = "\n".join([method, path, canonical_query, headers, signed, payload])
        scope = f"{date}/{region}/{service}/aws4_request"
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256",
                h.headers.get("X-AMZ-Date", ""),
                scope,
                hashlib.sha256(request.encode()).hexdigest(),
            ]
        )
        k = _hmac(("AWS4" + self.secret).encode(), date)
        for part in (region, service, "aws4_request"):
            k = _hmac(k, part)
        want = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, fields.get("Signature", "")):
            raise EC2Error(403, "SignatureDoesNotMatch", "The request signature does not match")

    # ---- actions ----------------------------------------------------------
    def _instance_xml(self, iid: str) -> str:
        x = self.instances[iid]
        return (
            f"<item><instanceId>{iid}</instanceId><imageId>{x['image']}</imageId>"
            f"<instanceState><code>{STATE_CODES[x['state']]}</code><name>{x['state']}</name>"
            f"</instanceState><instanceType>{x['type']}</instanceType>"
            f"<launchTime>2026-11-23T12:00:00.000Z</launchTime>"
            f"<placement><availabilityZone>{x['zone']}</availabilityZone></placement>"
            f"<tagSet><item><key>Name</key><value>{escape(x['name'])}</value></item></tagSet>"
            "</item>"
        )

    def _DescribeInstances(self, p: dict[str, str]) -> str:
        items = "".join(
            f"<item><reservationId>r-{iid}</reservationId><instancesSet>"
            f"{self._instance_xml(iid)}</instancesSet></item>"
            for iid in self.instances
        )
        return f"<reservationSet>{items}</reservationSet>"

    def _DescribeAddresses(self, p: dict[str, str]) -> str:
        return "<addressesSet/>"

    def _DescribeImages(self, p: dict[str, str]) -> str:
        items = "".join(
            f"<item><imageId>{i}</imageId><name>{n}</name><imageState>available</imageState>"
            "<architecture>x86_64</architecture></item>"
            for i, n in IMAGES.items()
        )
        return f"<imagesSet>{items}</imagesSet>"

    def _DescribeAvailabilityZones(self, p: dict[str, str]) -> str:
        items = "".join(
            f"<item><zoneName>{z}</zoneName><zoneState>available</zoneState>"
            f"<regionName>{self.region}</regionName></item>"
            for z in ZONES
        )
        return f"<availabilityZoneInfo>{items}</availabilityZoneInfo>"

    def _RunInstances(self, p: dict[str, str]) -> str:
        if p.get("ImageId") not in IMAGES:
            raise EC2Error(
                400, "InvalidAMIID.NotFound", f"The image id '{p.get('ImageId')}' does not exist"
            )
        tags = {
            p[k]: p[k.removesuffix("Key") + "Value"]
            for k in p
            if k.startswith("TagSpecification.1.Tag.") and k.endswith(".Key")
        }
        iid = f"i-{next(self._ids):017x}"
        self.instances[iid] = {
            "name": tags.get("Name", iid),
            "image": p["ImageId"],
            "type": p.get("InstanceType", "m1.small"),
            "zone": p.get("Placement.AvailabilityZone", ZONES[0]),
            "userdata": base64.b64decode(p.get("UserData", "")).decode(),
            "state": "running",
        }
        self.calls.append(("RunInstances", self.instances[iid]["name"]))
        return (
            f"<reservationId>r-{iid}</reservationId><instancesSet>"
            f"{self._instance_xml(iid)}</instancesSet>"
        )

    def _TerminateInstances(self, p: dict[str, str]) -> str:
        items = ""
        for k, iid in p.items():
            if not k.startswith("InstanceId."):
                continue
            if iid not in self.instances:
                raise EC2Error(
                    400, "InvalidInstanceID.NotFound", f"The instance ID '{iid}' does not exist"
                )
            x = self.instances[iid]
            self.calls.append(("TerminateInstances", x["name"]))
            before, x["state"] = x["state"], "terminated"
            items += (
                f"<item><instanceId>{iid}</instanceId><currentState><code>32</code>"
                f"<name>shutting-down</name></currentState><previousState>"
                f"<code>{STATE_CODES[before]}</code><name>{before}</name></previousState></item>"
            )
        return f"<instancesSet>{items}</instancesSet>"
