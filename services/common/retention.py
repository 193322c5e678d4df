"""Published outbox rows and processed inbox keys do not pile up: every replica of a service with
an event schema deletes those older than OPENHR_EVENT_RETENTION, at start and then hourly, in
batches (concurrent replicas just find less to delete)."""

from __future__ import annotations

import asyncio

import structlog

from services.common.cancellation import raise_if_cancelled
from services.common.consumer import purge_processed
from services.common.db import Database
from services.common.outbox import purge_published

log = structlog.get_logger("retention")

PURGE_EVERY = 3600.0  # seconds


class EventRetention:
    def __init__(self, db: Database, schema: str, older_than: float, *, every: float = PURGE_EVERY) -> None:
        self._db, self._schema, self._older_than, self._every = db, schema, older_than, every

    async def purge_once(self, batch: int = 5000) -> dict[str, int]:
        """Deletes everything past the retention, one batch per transaction."""
        deleted = {"outbox": 0, "inbox": 0}
        for table, purge in (("outbox", purge_published), ("inbox", purge_processed)):
            while True:
                async with self._db.transaction(None) as tx:
                    count = await purge(tx, self._schema, self._older_than, batch)
                deleted[table] += count
                if count < batch:
                    break
        return deleted

    async def run(self) -> None:
        """Purges now and then every `every` seconds until cancelled; survives Postgres outages."""
        while True:
            raise_if_cancelled()
            try:
                deleted = await self.purge_once()
                if any(deleted.values()):
                    log.info("old events purged", schema=self._schema, **deleted)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("old events not purged, will retry", schema=self._schema, error=type(exc).__name__)
            await asyncio.sleep(self._every)
