"""The controller API's request bodies, and the strict JSON every body must be.

Every field is typed and bounded, so a wrong type or an out-of-range value is
a 422 naming the field, never a 500 from the database or from arithmetic.
Numbers anywhere in a body (free-form facts included) must be finite and
integers must fit 64 bits: JSON that says ``1e400`` or a 5,000-digit integer
is refused before anything reads it.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$"  # node, pool and job names
Name = Annotated[str, Field(pattern=NAME, max_length=255)]
Short = Annotated[str, Field(max_length=1024)]
INT64 = 2**63 - 1


class Interface(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: Annotated[str, Field(max_length=255)]
    mac: Annotated[str, Field(max_length=64)] | None = None
    addresses: Annotated[list[Annotated[str, Field(max_length=255)]], Field(max_length=1024)] = []


class Facts(BaseModel):
    """What agents report; fields the controller reads are typed, others are kept as sent."""

    model_config = ConfigDict(extra="allow")
    hostname: Short | None = None
    cpus_logical: Annotated[int, Field(ge=0, le=2**24)] | None = None
    cpus_physical: Annotated[int, Field(ge=0, le=2**24)] | None = None
    memory: Annotated[int, Field(ge=0, le=INT64)] | None = None
    interfaces: Annotated[list[Interface], Field(max_length=4096)] = []
    os: Short | None = None
    kernel: Short | None = None
    boot_time: Annotated[float, Field(ge=0, le=1e11)] | None = None


class RegisterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name = Field(..., description="must equal the certificate CN unless insecure")
    pool: Name | None = None
    facts: Facts = Field(default_factory=Facts)


class HeartbeatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    cron: Annotated[str, Field(min_length=1, max_length=255)]
    nodes: Annotated[str, Field(max_length=65536)] = ""
    command: Annotated[str, Field(max_length=65536)] | None = None
    action: str = Field("command", pattern="^(command|ping|facts|metrics)$")


class DrainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Short = ""


class ProvisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    pool: Name = "default"


def _no_constant(c: str) -> Any:
    raise ValueError(f"{c} is not a JSON number")


def _float(s: str) -> float:
    f = float(s)
    if not math.isfinite(f):
        raise ValueError(f"number {s[:30]} is out of range")
    return f


def _int(s: str) -> int:
    if len(s.lstrip("-")) > 19 or not -INT64 - 1 <= int(s) <= INT64:
        raise ValueError(f"integer {s[:30]}{'...' if len(s) > 30 else ''} does not fit 64 bits")
    return int(s)


def check_json(body: bytes) -> str | None:
    """Why ``body`` is not acceptable JSON, or None when it is."""
    try:
        json.loads(body, parse_constant=_no_constant, parse_float=_float, parse_int=_int)
    except RecursionError:
        return "invalid JSON body: nested too deeply"
    except ValueError as e:  # JSONDecodeError included
        return f"invalid JSON body: {e}"
    return None
