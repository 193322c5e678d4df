"""Liveness for WatchEnrichmentJob: Postgres LISTEN on the channel every job change notifies
(store.JOB_CHANNEL, sent in the changing transaction, so delivered only on commit), one
connection per replica, fanned out in process to the streams watching each job.

A notification says only "job X changed": the stream then reads the job from Postgres, the
truth. A lost notification (the listener reconnecting) costs at most one heartbeat interval,
since the stream rereads on every heartbeat too."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import structlog

from services.common.cancellation import raise_if_cancelled
from services.enrichment.store import JOB_CHANNEL

log = structlog.get_logger("job_events")


class JobNotifications:
    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._watchers: dict[str, set[asyncio.Event]] = defaultdict(set)

    @asynccontextmanager
    async def watch(self, job_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set whenever the job changes (clear it after reading the job)."""
        changed = asyncio.Event()
        self._watchers[job_id].add(changed)
        try:
            yield changed
        finally:
            self._watchers[job_id].discard(changed)
            if not self._watchers[job_id]:
                del self._watchers[job_id]

    def _dispatch(self, _connection, _pid, _channel, payload: str) -> None:
        for changed in self._watchers.get(payload, ()):
            changed.set()

    def _wake_all(self) -> None:
        """After a reconnect notifications may have been missed: every stream rereads."""
        for watchers in self._watchers.values():
            for changed in watchers:
                changed.set()

    async def run(self) -> None:
        while True:
            raise_if_cancelled()
            connection = None
            try:
                connection = await asyncpg.connect(self._url, timeout=5)
                await connection.add_listener(JOB_CHANNEL, self._dispatch)
                self._wake_all()
                while not connection.is_closed():
                    await asyncio.sleep(5)
                    await connection.execute("SELECT 1")  # notices a dead connection
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("job notification listener failed, will reconnect", error=type(exc).__name__)
                await asyncio.sleep(1.0)
            finally:
                if connection is not None:
                    connection.terminate()
