"""Text from users and peers is printed as written, never read as rich markup."""

from __future__ import annotations

import subprocess
import sys

from rich.console import Console

from shoal.cli.tables import field, row, table


def test_a_cell_with_brackets_stays_whole() -> None:
    t = table("NODE", "WHY", title="[bold]x[/] events")
    row(t, "cn[1-2]", "facts: [field:hostname lookup error] and [red]not red[/red]")
    c = Console(width=200, record=True)
    c.print(t, field("reason", "[b]kept[/b]"))
    text = c.export_text()
    assert "[field:hostname lookup error]" in text and "[red]not red[/red]" in text
    assert "[bold]x[/] events" in text and "[b]kept[/b]" in text and "cn[1-2]" in text


def test_help_text_keeps_brackets() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "shoal.cli.main", "gateway", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and "TOML file with [[backend]]" in r.stdout, r.stdout


def test_facts_fit_80_columns_and_keep_a_reason_whole(agents) -> None:  # type: ignore[no-untyped-def]
    from agentproc import free_port, shoal

    agents.start("n1")
    inv = agents.inventory({"d1": f"127.0.0.1:{free_port()}"})
    cp = shoal("facts", "--inventory", str(inv), "-w", "n1,d1")
    assert cp.returncode == 4
    assert all(len(line) <= 80 for line in cp.stdout.splitlines()), cp.stdout
    assert "…" not in cp.stdout  # long words wrap, never cut
    assert cp.stderr.startswith("d1: UNREACHABLE: unreachable: connection refused")
