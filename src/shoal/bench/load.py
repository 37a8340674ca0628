"""Reading a campaign file: TOML, then the schema; every mistake becomes one
UsageError naming the file and the key (``layouts[1].slots``), with a
suggestion for a misspelt key."""

from __future__ import annotations

import difflib
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from shoal.bench.campaign import Campaign
from shoal.errors import UsageError


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that holds the key at ``loc`` (for suggestions)."""
    cls: Any = Campaign
    for part in loc:
        if isinstance(part, int):
            continue
        is_model = isinstance(cls, type) and issubclass(cls, BaseModel)
        field = cls.model_fields.get(part) if is_model else None
        if field is None:
            return None
        cls = _inner(field.annotation)
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _inner(ann: Any) -> Any:
    """The model inside list[M], M | None."""
    origin = typing.get_origin(ann)
    if origin in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(ann):
            got = _inner(arg)
            if isinstance(got, type) and issubclass(got, BaseModel):
                return got
    return ann


def _message(e: dict[str, Any]) -> str:
    loc = tuple(e["loc"])
    if e["type"] == "extra_forbidden":
        key = str(loc[-1])
        parent = _model_at(loc[:-1])
        hint = ""
        if parent is not None:
            known = [f.alias or n for n, f in parent.model_fields.items()]
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
        return f"{_where(loc)}: unknown key{hint}"
    msg = str(e["msg"]).removeprefix("Value error, ")
    # a union of str | int reports one error per member: the first says enough
    return f"{_where(loc)}: {msg}" if loc else msg


def _messages(err: ValidationError) -> list[str]:
    out: list[str] = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if p not in ("str", "int", "float", "list[str]"))
        m = _message({**e, "loc": loc})
        if m not in out and not any(m.split(":")[0] == o.split(":")[0] for o in out):
            out.append(m)
    return out


def parse_campaign(text: str, source: str = "campaign") -> Campaign:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{source}: not valid TOML: {e}") from e
    try:
        c = Campaign.model_validate(data)
    except ValidationError as e:
        raise UsageError(f"{source}: " + "; ".join(_messages(e))) from e
    if not c.name:
        c = c.model_copy(update={"name": Path(source).stem})
    return c


def load_campaign(path: str | Path) -> Campaign:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise UsageError(f"campaign {p}: cannot read it: {e.strerror or e}") from e
    return parse_campaign(text, str(p))
