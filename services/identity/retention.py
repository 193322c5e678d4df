"""Deletes expired secrets in the background: refresh tokens, one-time link tokens and OAuth
states once they are past their grace period (`store.PURGE_AFTER`). Every replica runs it;
concurrent runs just find nothing left to delete."""

from __future__ import annotations

import asyncio

import structlog

from services.common.cancellation import raise_if_cancelled
from services.common.db import Database
from services.identity import store

log = structlog.get_logger("retention")

PURGE_EVERY = 3600.0  # seconds; the first purge runs at start


class ExpiredSecretsPurge:
    def __init__(self, db: Database, *, every: float = PURGE_EVERY) -> None:
        self._db, self._every = db, every

    async def purge_once(self) -> dict[str, int]:
        async with self._db.transaction(None) as tx:
            return await store.purge_expired(tx)

    async def run(self) -> None:
        """Purges now and then every `every` seconds until cancelled; survives Postgres outages."""
        while True:
            raise_if_cancelled()
            try:
                deleted = await self.purge_once()
                if any(deleted.values()):
                    log.info("expired secrets purged", **deleted)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("expired secrets not purged, will retry", error=type(exc).__name__)
            await asyncio.sleep(self._every)
