"""shoal.fanout as a library: run, ping, facts, copy and gather against real
agents, in blocking and async forms, returning typed reports."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from agentproc import Agents, marked, wait_for

from shoal import fanout
from shoal.core.config import Settings
from shoal.errors import NodeSetError, UsageError


def _cluster(agents: Agents, tmp_path: Path, n: int = 3) -> Settings:
    for i in range(1, n + 1):
        root = tmp_path / f"root{i}"
        (root / "dest").mkdir(parents=True)
        agents.start(f"n{i}", files_root=root)
    return Settings.load(inventory=agents.inventory())


def test_run_ping_facts_give_typed_reports(agents: Agents, tmp_path: Path) -> None:
    s = _cluster(agents, tmp_path)
    seen: list[str] = []
    r = fanout.run(
        "n[1-3]",
        'echo "$SHOAL_NODE $GREETING"; [ "$SHOAL_NODE" != n2 ]',
        env={"GREETING": "hi"},
        settings=s,
        on_event=lambda ev, node: seen.append(node.name) if ev.HasField("result") else None,
    )
    assert [n.name for n in r] == ["n1", "n2", "n3"]
    assert (r["n1"].state, r["n1"].stdout, r["n1"].exit_code) == ("PASS", "n1 hi\n", 0)
    assert (r["n2"].state, r["n2"].exit_code) == ("FAILED", 1)
    assert not r.ok and r.exit_code() == 1 and sorted(seen) == ["n1", "n2", "n3"]
    assert fanout.ping("n[1-3]", settings=s).ok
    facts = fanout.facts(["n1", "n3"], settings=s)
    assert all(n.facts is not None and n.facts.cpus_logical > 0 for n in facts)
    timed = fanout.run("n1", "sleep 5", timeout=0.5, settings=s)
    assert timed["n1"].state == "TIMEOUT"


def test_copy_and_gather_through_the_api(agents: Agents, tmp_path: Path) -> None:
    s = _cluster(agents, tmp_path)
    src = tmp_path / "payload.bin"
    src.write_bytes(b"x" * 100_000)
    r = fanout.copy("n[1-3]", src, "/dest/", settings=s)
    assert r.ok, [(n.name, n.reason) for n in r]
    for i in (1, 2, 3):
        assert (tmp_path / f"root{i}" / "dest" / "payload.bin").read_bytes() == src.read_bytes()
    out = tmp_path / "back"
    out.mkdir()
    g = fanout.gather("n[1-3]", "/dest/payload.bin", out, settings=s)
    assert g.ok
    assert {n.name: n.path for n in g} == {f"n{i}": out / f"payload.bin.n{i}" for i in (1, 2, 3)}


def test_bad_input_raises_before_anything_is_contacted(tmp_path: Path) -> None:
    s = Settings.load(inventory=None)
    with pytest.raises(NodeSetError):
        fanout.run("n[1-", "true", settings=s)
    with pytest.raises(UsageError, match="no command"):
        fanout.run("n1", "  ", settings=s)
    with pytest.raises(UsageError, match="timeout"):
        fanout.run("n1", "true", timeout=-1, settings=s)
    with pytest.raises(UsageError, match="absolute"):
        fanout.copy("n1", tmp_path, "relative/", settings=s)


def test_cancelling_run_async_stops_the_command_on_every_node(
    agents: Agents, tmp_path: Path
) -> None:
    s = _cluster(agents, tmp_path)
    marker = f"shoal-test-{uuid.uuid4().hex}"

    async def main() -> None:
        task = asyncio.create_task(fanout.run_async("n[1-3]", f"sleep 600; echo {marker}",
                                                    width=1, settings=s))  # fmt: skip
        await asyncio.to_thread(wait_for, lambda: len(marked(marker)) == 3, "three running")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    wait_for(lambda: marked(marker) == [], "the commands gone")
