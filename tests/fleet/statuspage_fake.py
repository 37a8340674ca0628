"""A local HTTP server speaking Statuspage's documented metric data endpoint:
POST /v1/pages/{page_id}/metrics/{metric_id}/data, Authorization: OAuth <key>,
JSON body {"data": {"timestamp": <unix seconds>, "value": <number>}} -> 201.
It can answer the first N requests with 429 or 5xx to exercise retries."""

from __future__ import annotations

import json
import re
from http.server import BaseHTTPRequestHandler
from typing import Any

from local_http import LocalHTTPServer

PATH = re.compile(r"^/v1/pages/([^/]+)/metrics/([^/]+)/data(?:\.json)?$")


class FakeStatuspage(LocalHTTPServer):
    def __init__(self, page_id: str, api_key: str, failures: list[int] | None = None) -> None:
        self.page_id, self.api_key = page_id, api_key
        self.failures = list(failures or [])
        self.points: list[tuple[str, int, float]] = []
        self.requests = 0
        self.bodies: list[bytes] = []
        fake = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, code: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                fake.requests += 1
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.bodies.append(body)
                m = PATH.match(self.path)
                if not m or m.group(1) != fake.page_id:
                    return self._send(404, {"error": "not found"})
                if self.headers.get("Authorization") != f"OAuth {fake.api_key}":
                    return self._send(401, {"error": "unauthorized"})
                if fake.failures:
                    return self._send(fake.failures.pop(0), {"error": "try later"})
                try:
                    d = json.loads(body)["data"]
                    ts, value = d["timestamp"], d["value"]
                    assert isinstance(ts, int) and isinstance(value, float)
                except (ValueError, KeyError, AssertionError, TypeError):
                    return self._send(400, {"error": "bad data"})
                fake.points.append((m.group(2), ts, value))
                self._send(201, {"timestamp": ts, "value": value, "metric_id": m.group(2)})

        super().__init__(H)
