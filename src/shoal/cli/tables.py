"""Tables and fields for people. Every cell is printed as written: rich markup
is never read from data, so a reason holding [brackets] stays whole."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table


def table(*columns: str, title: str | None = None) -> Table:
    from rich.table import Table
    from rich.text import Text

    return Table(*columns, title=Text(title) if title else None)


def row(t: Table, *cells: Any) -> None:
    from rich.text import Text

    for col in t.columns:
        col.overflow = "fold"  # a narrow terminal wraps a long word, never cuts it
    t.add_row(*(c if isinstance(c, Text) else Text(str(c)) for c in cells))


def field(name: str, value: Any) -> Any:
    """``name   value`` with the name in bold."""
    from rich.text import Text

    return Text.assemble((f"{name:15}", "bold"), " ", str(value))


def show(*items: Any) -> None:
    from rich.console import Console

    c = Console()
    for it in items:
        c.print(it)
