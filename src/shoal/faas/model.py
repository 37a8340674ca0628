"""A trace as the simulator reads it: functions (memory, app) and invocations
(arrival time, function, duration), all in seconds, sorted by arrival."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shoal.errors import UsageError


class TraceError(UsageError):
    """A trace file that cannot be read: the message names file, line, column."""

    def __init__(self, path: object, line: int, column: int, what: str) -> None:
        where = f" line {line}, column {column}:" if line > 0 else ""  # 0: the file itself
        super().__init__(f"{path}:{where} {what}")
        self.line = line
        self.column = column


@dataclass(frozen=True)
class Function:
    name: str
    app: str
    memory_mb: float
    trigger: str = ""


@dataclass
class Trace:
    functions: list[Function]
    times: np.ndarray  # arrival, s, ascending
    func: np.ndarray  # index into functions
    durations: np.ndarray  # s

    def __post_init__(self) -> None:
        order = np.argsort(self.times, kind="stable")
        self.times = np.asarray(self.times, dtype=np.float64)[order]
        self.func = np.asarray(self.func, dtype=np.int64)[order]
        self.durations = np.asarray(self.durations, dtype=np.float64)[order]

    def __len__(self) -> int:
        return len(self.times)

    @property
    def end(self) -> float:
        if not len(self.times):
            return 0.0
        return float(np.max(self.times + self.durations))
