"""The campaign file (TOML, docs/bench.md): its schema as pydantic models.
Unknown keys are errors; sizes, durations, formulas, regexes, time formats
and placeholders are checked when the file loads, not when a slot runs."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shoal.bench.timestamps import CAPTURE, ISO, Stamp, format_regex, zone
from shoal.bench.units import Formula, parse_seconds, parse_size

PLACEHOLDERS = ("scratch", "slot", "cpus", "threads", "cores", "node", "layout", "rep")
# {name} not after "$": shell's ${VAR} and awk's {print} are left alone
_PLACEHOLDER = re.compile(r"(?<!\$)\{([a-z_]+)\}")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_placeholders(text: str) -> str:
    for name in _PLACEHOLDER.findall(text):
        if name not in PLACEHOLDERS:
            known = " ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise ValueError(f"unknown placeholder {{{name}}} in {text!r} (known: {known})")
    return text


def fill(text: str, values: dict[str, str]) -> str:
    """``text`` with its placeholders replaced (checked at load: all known)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


class Layout(Strict):
    # a file name on the nodes: DIR/logs/NAME-rREP-sSLOT.log
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]*$")] = ""
    slots: Annotated[int, Field(gt=0)] | None = None
    cores_per_slot: Annotated[int, Field(gt=0)] | None = None
    cpus_per_slot: Annotated[int, Field(gt=0)] | None = None
    smt: bool = True  # every SMT sibling of a slot's cores; False: one thread per core
    span_numa: bool = False  # a slot may take cores of several NUMA nodes

    @model_validator(mode="after")
    def _sizes(self) -> Layout:
        if self.cores_per_slot and self.cpus_per_slot:
            raise ValueError("give cores_per_slot or cpus_per_slot, not both")
        if not (self.slots or self.cores_per_slot or self.cpus_per_slot):
            raise ValueError("a layout needs slots, cores_per_slot or cpus_per_slot")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.cores_per_slot:
            per = f"{self.cores_per_slot}core"
        elif self.cpus_per_slot:
            per = f"{self.cpus_per_slot}cpu"
        else:
            return f"{self.slots}slots"
        return f"{self.slots}x{per}" if self.slots else per


class Command(Strict):
    run: str
    env: dict[str, str] = {}
    memory: str | int | None = None  # per slot: a size or a formula
    pids: Annotated[int, Field(ge=0)] = 0
    cwd: str = ""  # working directory on the nodes; default: the agent's

    @field_validator("cwd")
    @classmethod
    def _cwd(cls, v: str) -> str:
        if v and not v.startswith("/"):
            raise ValueError(f"{v!r}: must be an absolute path on the nodes")
        return v

    _check_run = field_validator("run")(check_placeholders)

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        for k, val in v.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
                raise ValueError(f"{k!r} is not an environment variable name")
            check_placeholders(val)
        return v

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str | int | None) -> str | int | None:
        if v is not None:
            Formula(v)
        return v

    def memory_for(self, threads: int, cores: int, slots: int) -> int:
        """Bytes a slot may use (0: no limit)."""
        if self.memory is None:
            return 0
        return Formula(self.memory)(threads=threads, cores=cores, slots=slots)


def _size(v: str | int) -> str | int:
    parse_size(v)
    return v


class Scratch(Strict):
    dir: str
    free: str | int = 0  # free disk each slot needs under dir

    _check_free = field_validator("free")(_size)

    @field_validator("dir")
    @classmethod
    def _abs(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"{v!r}: must be an absolute path on the nodes")
        return v

    @property
    def free_bytes(self) -> int:
        return parse_size(self.free)


class HostNeeds(Strict):
    thp: Literal["always", "madvise", "never"] | None = None
    hugepages: str | int | None = None  # "off": none reserved; a size: at least that reserved
    governor: str | None = None  # every CPU's cpufreq scaling governor, e.g. "performance"

    @field_validator("hugepages")
    @classmethod
    def _huge(cls, v: str | int | None) -> str | int | None:
        if v is not None and v != "off":
            parse_size(v)
        return v


def _check_stamp(v: str | None) -> str | None:
    if v is not None and v not in (ISO, CAPTURE):
        format_regex(v)
    return v


def _check_zone(v: str | None) -> str | None:
    if v is not None:
        zone(v)
    return v


class ParseDefaults(Strict):
    timestamp: str = ISO  # strftime format, "iso8601" or "capture"
    timezone: str = "UTC"  # for times without an offset

    _ts = field_validator("timestamp")(_check_stamp)
    _tz = field_validator("timezone")(_check_zone)


def _compile(what: str, pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ValueError(f"{what} {pattern!r} does not compile: {e}") from e


class Phase(Strict):
    name: Annotated[str, Field(min_length=1)]
    start: str
    end: str
    timestamp: str | None = None
    timezone: str | None = None

    _ts = field_validator("timestamp")(_check_stamp)
    _tz = field_validator("timezone")(_check_zone)

    @model_validator(mode="after")
    def _patterns(self) -> Phase:
        _compile(f"phase {self.name}: start pattern", self.start)
        _compile(f"phase {self.name}: end pattern", self.end)
        return self

    def stamp(self, defaults: ParseDefaults) -> Stamp:
        return Stamp(self.timestamp or defaults.timestamp, self.timezone or defaults.timezone)


class Metric(Strict):
    name: Annotated[str, Field(min_length=1)]
    regex: str | None = None  # group "value" or group 1 of the last matching line
    json_path: str | None = Field(None, alias="json")  # dotted path in the log's last JSON object
    scale: float = 1.0
    unit: str = ""

    @model_validator(mode="after")
    def _one(self) -> Metric:
        if (self.regex is None) == (self.json_path is None):
            raise ValueError(f"metric {self.name}: give regex or json, one of them")
        if self.regex is not None:
            rx = _compile(f"metric {self.name}: regex", self.regex)
            if rx.groups == 0:
                raise ValueError(f"metric {self.name}: regex {self.regex!r} has no group")
        return self


class Campaign(Strict):
    name: str = ""
    nodes: str | list[str] | None = None
    repetitions: Annotated[int, Field(gt=0)] = 1
    warmups: Annotated[int, Field(ge=0)] = 0
    time_limit: str | float = 0  # per run of a slot; 0: none
    layouts: list[Layout] = []
    command: Command | None = None
    scratch: Scratch | None = None
    host: HostNeeds = HostNeeds()
    parse: ParseDefaults = ParseDefaults()
    phases: list[Phase] = []
    metrics: list[Metric] = []

    @field_validator("time_limit")
    @classmethod
    def _limit(cls, v: str | float) -> str | float:
        parse_seconds(v)
        return v

    @model_validator(mode="after")
    def _unique(self) -> Campaign:
        for what, names in (
            ("layout", [x.label for x in self.layouts]),
            ("phase or metric", [x.name for x in self.phases] + [x.name for x in self.metrics]),
        ):
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"{what} name {dup[0]!r} is used twice")
        return self

    @property
    def time_limit_s(self) -> float:
        return parse_seconds(self.time_limit)

    def layout(self, label: str) -> Layout | None:
        return next((x for x in self.layouts if x.label == label), None)
