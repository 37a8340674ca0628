"""The watchdog: judges every node's silence, marks suspect/down, holds on a
likely partition (circuit breaker) and hands hosts to replacement."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from sqlalchemy import and_, func, or_, select

from shoal.fleet.db import Node, utcnow
from shoal.fleet.replace import Replacer


class Watchdog(Replacer):
    async def watchdog(self) -> None:
        t0 = time.perf_counter()
        now = utcnow()
        s = self.s
        to_replace: list[tuple[str, str]] = []
        up = (now - self.started_at).total_seconds()  # listening for this long
        async with self.session() as sess, sess.begin():
            # Only rows that may need action, as light tuples: a pass runs in the
            # event loop, and reading every row held the heartbeats behind it.
            # A running node whose stored heartbeat is fresh needs nothing;
            # the in-memory heartbeats are newer still, so this is a superset.
            stale = now - dt.timedelta(seconds=s.suspect_after)
            cols = (Node.name, Node.state, Node.pool, Node.state_since, Node.last_heartbeat)
            maybe = or_(
                Node.state.in_(("provisioning", "suspect", "down")),
                and_(Node.state == "running", Node.last_heartbeat < stale),
            )
            nodes = (await sess.execute(select(*cols).where(maybe))).all()
            counts = dict(
                (await sess.execute(select(Node.state, func.count()).group_by(Node.state))).all()
            )
            fleet = sum(counts.values())
            n_active = fleet - counts.get("drained", 0)
            silent: list[tuple[Any, str, str]] = []  # (node row, new state, why)
            resumed: set[str] = set()
            back: list[str] = []  # silent nodes heard from again
            for n in nodes:
                hb = max(filter(None, [n.last_heartbeat, self.last_hb.get(n.name)]), default=None)
                age = (now - hb).total_seconds() if hb else None
                if n.state == "provisioning":
                    waited = min((now - n.state_since).total_seconds(), up)
                    if waited > s.boot_timeout:
                        why = (
                            f"not registered {waited:.0f}s after provisioning"
                            f" (boot timeout {s.boot_timeout:g}s)"
                        )
                        silent.append((n, "down", why))
                elif n.state in ("running", "suspect", "down") and age is not None:
                    # a node is silent at most since this controller started
                    # listening: a restart after an outage starts every clock anew
                    quiet = age if n.state == "down" else min(age, up)
                    if age <= s.suspect_after:
                        resumed.add(n.name)
                        if n.state != "running":
                            back.append(n.name)
                    elif quiet <= s.suspect_after:
                        pass
                    elif quiet > s.down_after and n.state != "down":
                        why = f"silent {quiet:.0f}s (grace {s.down_after:g}s)"
                        silent.append((n, "down", why))
                    elif n.state == "running":
                        silent.append((n, "suspect", f"silent {quiet:.0f}s"))
                    elif n.state == "down" and s.policy == "replace":
                        to_replace.append((n.name, n.pool))
                elif n.state == "down" and s.policy == "replace":  # never heard from
                    to_replace.append((n.name, n.pool))
            objs = await self._load_nodes(sess, [*back, *(x[0].name for x in silent)])
            for name in back:
                self.transition(sess, objs[name], "running", "watchdog", "heartbeats resumed")
            newly_down = [x for x in silent if x[1] == "down" and x[0].state != "provisioning"]
            # "together" means silent at the same time, not crossing the grace in the
            # same pass: suspects count, or heartbeats a few ms apart split the group
            lost = {x[0].name for x in silent} | {
                n.name for n in nodes if n.state in ("suspect", "down") and n.name not in resumed
            }
            if (
                n_active >= s.breaker_min_nodes
                and len(lost) >= s.breaker_fraction * n_active
                and newly_down
            ):
                if not self.breaker_open:
                    self.breaker_open = True
                    self.event(
                        sess,
                        None,
                        "circuit-breaker",
                        "watchdog",
                        f"holding: {len(lost)} of {n_active} nodes silent together"
                        f" (>= {s.breaker_fraction:.0%}): likely a network partition,"
                        " not marking down or replacing",
                    )
                for n, st, why in silent:
                    if st == "suspect" or n.state == "running":
                        self.transition(sess, objs[n.name], "suspect", "watchdog", why)
                to_replace = []
            else:
                if self.breaker_open:
                    self.breaker_open = False
                    self.event(sess, None, "circuit-breaker", "watchdog", "closed: fleet healthy")
                for n, st, why in silent:
                    self.transition(sess, objs[n.name], st, "watchdog", why)
                    if st == "down" and s.policy == "replace":
                        to_replace.append((n.name, n.pool))
        self.watchdog_seconds = time.perf_counter() - t0
        await self.resume_orphans()
        # a host is held (one replace-held event) until it is no longer waiting
        self.held &= {name for name, _ in to_replace}
        if to_replace and self.provider is not None:
            await self.plan_replacements(to_replace, fleet)

    async def _load_nodes(self, sess: Any, names: list[str]) -> dict[str, Node]:
        """ORM objects for these nodes only, in chunks (bounded IN lists)."""
        objs: dict[str, Node] = {}
        for i in range(0, len(names), 500):
            q = select(Node).where(Node.name.in_(names[i : i + 500]))
            objs.update((n.name, n) for n in (await sess.execute(q)).scalars())
        return objs
