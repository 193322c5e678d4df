"""PostgreSQL access on an asyncpg pool: one transaction per unit of work, opened with the
caller's id for row-level security.

Every transaction switches to the service's app role (neither owner nor superuser, so RLS
applies with FORCE) and sets `app.user_id`; policies read it with
`NULLIF(current_setting('app.user_id', true), '')::uuid`. BEGIN and both settings travel in
one simple-protocol round trip, so a read is three round trips in all (BEGIN+context, query,
COMMIT). SQL is written for asyncpg directly (why: bench/results/get_profile_variants_sqlalchemy.md);
SQLAlchemy remains for Alembic migrations."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import asyncpg

from services.common.settings import ServiceSettings

_ROLE = re.compile(r"^[a-z_][a-z0-9_]*$")


class Tx:
    """The connection of one transaction, and what happened in it that others care about."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self.fetch = connection.fetch
        self.fetchrow = connection.fetchrow
        self.fetchval = connection.fetchval
        self.execute = connection.execute
        self.executemany = connection.executemany
        self.outbox_dirty = False


async def _init_connection(connection: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await connection.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _rollback(connection: asyncpg.Connection) -> None:
    try:
        await connection.execute("ROLLBACK")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        connection.terminate()  # broken: the pool replaces it


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    """The pool's reset on release, in place of asyncpg's default query (RESET ALL, CLOSE ALL,
    UNLISTEN *, advisory unlock: a round trip per transaction, ~4 % of a read's CPU here).
    Nothing outlives a transaction: role and caller are set with is_local, no LISTEN, no cursor,
    only transaction-scoped advisory locks; asyncpg still rolls back a transaction left open
    before calling this."""


def _open_statement(role: str, user_id: str | None) -> str:
    """BEGIN plus the RLS context, as literals: the simple protocol takes no parameters, and
    both values are validated here (a role name from settings, a UUID from a verified token)."""
    caller = str(uuid.UUID(user_id)) if user_id else ""
    return f"BEGIN; SELECT set_config('role', '{role}', true), set_config('app.user_id', '{caller}', true)"


def app_role(schema: str) -> str:
    """The role a service's transactions switch to (created by its first migration)."""
    return f"{schema}_app"


def rows_affected(status: str) -> int:
    """Rows a command changed, from its status such as 'DELETE 3'."""
    return int(status.rsplit(" ", 1)[-1])


class Database:
    def __init__(self, url: str, *, app_role: str, pool_size: int = 10, application_name: str = "openhr") -> None:
        if not _ROLE.match(app_role):
            raise ValueError(f"invalid role name {app_role!r}")
        self.app_role = app_role
        self._url, self._pool_size, self._application_name = url, pool_size, application_name
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._after_outbox_commit: list[Callable[[], None]] = []

    @classmethod
    def for_service(cls, settings: ServiceSettings, schema: str) -> Database:
        """The database of the service that owns `schema`: its app role, DATABASE_URL, OPENHR_DB_POOL_SIZE."""
        return cls(
            settings.database_url, app_role=app_role(schema), pool_size=settings.db_pool_size, application_name=schema
        )

    async def pool(self) -> asyncpg.Pool:
        """Created on first use, so a service starts (NOT_SERVING) even while Postgres is down."""
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._url,
                        min_size=0,
                        max_size=self._pool_size,
                        max_inactive_connection_lifetime=300,
                        timeout=5,
                        command_timeout=30,
                        init=_init_connection,
                        server_settings={"application_name": self._application_name},
                    )
        return self._pool

    def on_outbox_commit(self, callback: Callable[[], None]) -> None:
        """Called after a transaction that wrote outbox rows commits (wakes the relay)."""
        self._after_outbox_commit.append(callback)

    @asynccontextmanager
    async def transaction(self, user_id: str | None) -> AsyncIterator[Tx]:
        """A transaction as the app role, scoped to `user_id` (None: no user, e.g. the relay)."""
        pool = await self.pool()
        async with pool.acquire(timeout=5) as connection:
            tx = Tx(connection)
            await connection.execute(_open_statement(self.app_role, user_id))
            try:
                yield tx
            except BaseException:
                await _rollback(connection)
                raise
            await connection.execute("COMMIT")
        if tx.outbox_dirty:
            for callback in self._after_outbox_commit:
                callback()

    async def ping(self) -> None:
        pool = await self.pool()
        async with pool.acquire(timeout=2) as connection:
            await connection.fetchval("SELECT 1")

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
