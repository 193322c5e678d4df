"""Rows past their retention go, in the background of every replica: `PeriodicPurge` runs a
purge at start and then every hour (concurrent replicas just find less to delete), and
`EventRetention` deletes published outbox rows and processed inbox keys older than
OPENHR_EVENT_RETENTION, in batches."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod

import structlog

from services.common.cancellation import raise_if_cancelled
from services.common.consumer import purge_processed
from services.common.db import Database
from services.common.outbox import purge_published

log = structlog.get_logger("retention")

PURGE_EVERY = 3600.0  # seconds; the first purge runs at start


class PeriodicPurge(ABC):
    """Subclasses say what `purge_once` deletes (a count per kind of row) and under what name."""

    what = "rows"

    def __init__(self, *, every: float = PURGE_EVERY) -> None:
        self._every = every

    @abstractmethod
    async def purge_once(self) -> dict[str, int]:
        """Deletes what has expired; the count per kind of row."""

    async def run(self) -> None:
        """Purges now and then every `every` seconds until cancelled; survives Postgres outages."""
        while True:
            raise_if_cancelled()
            try:
                deleted = await self.purge_once()
                if any(deleted.values()):
                    log.info(f"{self.what} purged", **deleted)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(f"{self.what} not purged, will retry", error=type(exc).__name__)
            await asyncio.sleep(self._every)


class EventRetention(PeriodicPurge):
    what = "old events"

    def __init__(self, db: Database, schema: str, older_than: float, *, every: float = PURGE_EVERY) -> None:
        super().__init__(every=every)
        self._db, self._schema, self._older_than = db, schema, older_than

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
