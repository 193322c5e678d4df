"""PostgreSQL access: SQLAlchemy async on asyncpg, one transaction per unit of work, each
opened with the caller's id for row-level security.

Every transaction switches to the service's app role (neither owner nor superuser, so RLS
applies with FORCE) and sets `app.user_id`, in a single round trip. Policies read it with
`NULLIF(current_setting('app.user_id', true), '')::uuid`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

_OPEN = text("SELECT set_config('role', :role, true), set_config('app.user_id', :uid, true)")
OUTBOX_DIRTY = "outbox_dirty"


class Database:
    def __init__(self, url: str, *, app_role: str, pool_size: int = 10, application_name: str = "openhr") -> None:
        self.app_role = app_role
        self.engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=5,
            pool_recycle=1800,
            pool_pre_ping=True,
            connect_args={"server_settings": {"application_name": application_name}, "timeout": 5},
        )
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._after_outbox_commit: list[Callable[[], None]] = []

    def on_outbox_commit(self, callback: Callable[[], None]) -> None:
        """Called after a transaction that wrote outbox rows commits (wakes the relay)."""
        self._after_outbox_commit.append(callback)

    @asynccontextmanager
    async def transaction(self, user_id: str | None) -> AsyncIterator[AsyncSession]:
        """A transaction as the app role, scoped to `user_id` (None: no user, e.g. the relay)."""
        async with self._sessions() as session:
            async with session.begin():
                await session.execute(_OPEN, {"role": self.app_role, "uid": user_id or ""})
                yield session
            if session.info.pop(OUTBOX_DIRTY, False):
                for callback in self._after_outbox_commit:
                    callback()

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()
