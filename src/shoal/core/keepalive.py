"""HTTP/2 keepalive: one policy for every channel and server, so a quiet
stream lives as long as its work and a dead or hung peer is found in
bounded time.

A dialler pings every ``interval`` seconds, calls or not, and drops the
connection when a ping goes unanswered for ``timeout`` seconds: a hung relay
(SIGSTOP) or a cut link is found within interval + timeout. A server accepts
pings as often as every MIN_INTERVAL (so any dialler's allowed interval is
fine) and pings its callers at twice the interval: a caller that is gone is
found later than a dialler finds a dead relay, which leaves an adopting
grandparent time to take a subtree over before its command is stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shoal.errors import ConfigError

MIN_INTERVAL = 1.0  # seconds; servers accept pings down to half of it


@dataclass(frozen=True)
class Keepalive:
    interval: float = 5.0
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if not self.interval >= MIN_INTERVAL:
            raise ConfigError(
                f"keepalive_interval {self.interval!r}: must be at least {MIN_INTERVAL:g} s"
            )
        if not self.timeout > 0:
            raise ConfigError(f"keepalive_timeout {self.timeout!r}: must be positive")

    def channel_options(self) -> list[tuple[str, Any]]:
        timeout_ms = int(self.timeout * 1000)
        return [
            ("grpc.keepalive_time_ms", int(self.interval * 1000)),
            ("grpc.keepalive_timeout_ms", timeout_ms),
            ("grpc.http2.ping_timeout_ms", timeout_ms),  # the keepalive ping's own timer
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
        ]

    def server_options(self) -> list[tuple[str, Any]]:
        timeout_ms = int(self.timeout * 1000)
        return [
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", int(MIN_INTERVAL * 500)),
            ("grpc.http2.max_ping_strikes", 2),
            ("grpc.keepalive_time_ms", int(self.interval * 2000)),
            ("grpc.keepalive_timeout_ms", timeout_ms),
            ("grpc.http2.ping_timeout_ms", timeout_ms),
            ("grpc.http2.max_pings_without_data", 0),
        ]
