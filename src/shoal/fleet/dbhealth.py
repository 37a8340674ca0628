"""How the controller's database is doing, logged once per change.

Two conditions, tracked apart: the database is *unreachable* (a connection
cannot be made or hangs, so nothing works) or it *refuses writes* (it answers
reads but every write fails: a full disk, a read-only database). Each is
logged once when it starts and once when it ends, however often the loops
retry meanwhile; `/healthz` reports either as 503.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger("shoal.fleet")

# what a loop's pass did with the database: nothing, read (maybe wrote), wrote
IDLE, READ, WROTE = 0, 1, 2

# what a database call may raise when the database, not our code, is at fault
DB_ERRORS: tuple[type[Exception], ...] = (SQLAlchemyError, OSError, TimeoutError)


def brief(e: BaseException) -> str:
    """One line naming the error; some (TimeoutError) carry no message at all."""
    text = str(e).strip()
    first = text.splitlines()[0][:200] if text else ""
    if isinstance(e, TimeoutError) and not first:
        first = "timed out"
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def is_unreachable(e: BaseException) -> bool:
    """A failure to reach the database (as opposed to a refused statement)."""
    if isinstance(e, OSError | TimeoutError | InterfaceError | PoolTimeout):
        return True
    if isinstance(e, DBAPIError):
        orig = e.orig
        if e.connection_invalidated or isinstance(orig, OSError | TimeoutError):
            return True
        # asyncpg and aiosqlite name their connection failures
        name = type(orig).__name__ if orig is not None else ""
        return "Connection" in name or "CannotConnect" in name
    return False


class DbHealth:
    def __init__(self) -> None:
        self.unreachable: str | None = None  # why, while it is
        self.refusing_writes: str | None = None

    @property
    def ok(self) -> bool:
        return self.unreachable is None and self.refusing_writes is None

    def why(self) -> str:
        if self.unreachable is not None:
            return f"database unreachable: {self.unreachable}"
        if self.refusing_writes is not None:
            return f"database refuses writes: {self.refusing_writes}"
        return "ok"

    def failed(self, e: BaseException, writing: bool) -> None:
        """A database call failed; ``writing``: it was meant to write."""
        if isinstance(e, IntegrityError):  # a conflict (two registrations racing), not health
            return
        why = brief(e)
        if is_unreachable(e) or not writing:
            if self.unreachable is None:
                log.warning("database unreachable (retrying): %s", why)
            self.unreachable = why
        else:
            if self.refusing_writes is None:
                log.warning("database refuses writes (retrying): %s", why)
            self.refusing_writes = why

    def reached(self) -> None:
        """A call reached the database and got its answer."""
        if self.unreachable is not None:
            log.warning("database reachable again")
            self.unreachable = None

    def wrote(self) -> None:
        """A write was committed."""
        self.reached()
        if self.refusing_writes is not None:
            log.warning("database accepts writes again")
            self.refusing_writes = None
