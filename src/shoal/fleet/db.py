"""The controller's state: SQLAlchemy 2 models, async engines, Alembic on start."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shoal.errors import ConfigError


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    pass


class TZDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware everywhere (SQLite stores naive; we store and read UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if isinstance(value, dt.datetime) and dialect.name == "sqlite":
            return value.astimezone(dt.UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


class Node(Base):
    __tablename__ = "nodes"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    state: Mapped[str] = mapped_column(String(32), index=True)
    pool: Mapped[str] = mapped_column(String(255), default="default")
    address: Mapped[str | None] = mapped_column(String(255), nullable=True)
    cpus: Mapped[int | None] = mapped_column(Integer, nullable=True)
    memory: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    facts: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(TZDateTime(), default=utcnow)
    state_since: Mapped[dt.datetime] = mapped_column(TZDateTime(), default=utcnow)
    registered_at: Mapped[dt.datetime | None] = mapped_column(TZDateTime(), nullable=True)
    last_heartbeat: Mapped[dt.datetime | None] = mapped_column(TZDateTime(), nullable=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)


class Event(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(TZDateTime(), default=utcnow, index=True)
    node: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(64))
    from_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    to_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    actor: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text, default="")


class Job(Base):
    __tablename__ = "jobs"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    cron: Mapped[str] = mapped_column(String(255))
    nodes: Mapped[str] = mapped_column(Text, default="")
    command: Mapped[str | None] = mapped_column(Text, nullable=True)
    action: Mapped[str] = mapped_column(String(32))  # command | ping | facts | metrics
    created_at: Mapped[dt.datetime] = mapped_column(TZDateTime(), default=utcnow)
    last_scheduled: Mapped[dt.datetime | None] = mapped_column(TZDateTime(), nullable=True)


class JobRun(Base):
    __tablename__ = "job_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(255), index=True)
    scheduled_at: Mapped[dt.datetime] = mapped_column(TZDateTime())
    started_at: Mapped[dt.datetime | None] = mapped_column(TZDateTime(), nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(TZDateTime(), nullable=True)
    status: Mapped[str] = mapped_column(String(32))  # running | ok | failed | skipped
    coalesced: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class Operation(Base):
    """A replacement, written (with its idempotency key) before any provider call."""

    __tablename__ = "operations"
    __table_args__ = (UniqueConstraint("key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))  # replace
    node: Mapped[str] = mapped_column(String(255), index=True)
    pool: Mapped[str] = mapped_column(String(255), default="default")
    step: Mapped[str] = mapped_column(String(32))  # pending|deleting|creating|done|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(TZDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(TZDateTime(), default=utcnow)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)


def async_url(url: str) -> str:
    """Accept the URLs users write and map them to the async drivers."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        u = make_url(url)
    except ArgumentError as e:
        raise ConfigError(f"invalid database URL {url!r}") from e
    backend = u.get_backend_name()
    if backend == "sqlite":
        return str(u.set(drivername="sqlite+aiosqlite"))
    if backend in ("postgresql", "postgres"):
        return u.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise ConfigError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


def sync_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    u = make_url(async_url(url))
    if u.get_backend_name() == "sqlite":
        return str(u.set(drivername="sqlite"))
    return u.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def make_engine(url: str, timeout: float = 5.0, command_timeout: float | None = None) -> Any:
    """``timeout`` bounds making a connection (PostgreSQL) and, unless
    ``command_timeout`` says otherwise, each statement: a hung database is
    an error, not a wait."""
    from sqlalchemy.ext.asyncio import create_async_engine

    aurl = async_url(url)
    if aurl.startswith("sqlite"):
        from sqlalchemy import event

        eng = create_async_engine(aurl, connect_args={"timeout": 30})

        @event.listens_for(eng.sync_engine, "connect")
        def _pragma(dbapi_conn: Any, _rec: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return eng
    connect = {"timeout": timeout, "command_timeout": command_timeout or timeout}
    return create_async_engine(
        aurl, pool_size=10, max_overflow=5, pool_pre_ping=True, connect_args=connect
    )


async def migrate(engine: Any) -> None:
    """Apply the packaged Alembic migrations up to head on the given engine."""
    from pathlib import Path

    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))

    def _run(conn: Any) -> None:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")

    async with engine.begin() as conn:
        await conn.run_sync(_run)
