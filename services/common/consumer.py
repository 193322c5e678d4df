"""Consumes domain events from a Redis stream with a consumer group (at least once).

An event is acknowledged only after its handler returns. Events left pending by a crashed
consumer are claimed again after `claim_idle`; an event that fails `max_deliveries` times
is moved to `<stream>.dead` so that it does not block the others, and so is an entry its
topic's producer did not sign (services/common/event_auth.py): it is never handled."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from openhr.events.v1 import events_pb2
from services.common.cancellation import raise_if_cancelled
from services.common.db import Tx
from services.common.event_auth import EventVerifier
from services.common.metrics import EVENTS_CONSUMED
from services.common.outbox import stream_name

log = structlog.get_logger("consumer")
Handler = Callable[[events_pb2.Event], Awaitable[None]]


async def first_delivery(tx: Tx, schema: str, event_id: str) -> bool:
    """Records the event in the schema's inbox; False when it was handled before (skip it)."""
    inserted = await tx.fetchval(
        f"INSERT INTO {schema}.inbox (event_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING true",
        uuid.UUID(event_id),
    )
    return bool(inserted)


async def purge_processed(tx: Tx, schema: str, older_than: float, batch: int = 5000) -> int:
    """Deletes up to `batch` inbox keys of events handled more than `older_than` seconds ago;
    returns how many (services/common/retention.py runs it). A redelivery comes within minutes
    (claim_idle); the retention is days."""
    deleted = await tx.fetch(
        f"DELETE FROM {schema}.inbox WHERE event_id IN (SELECT event_id FROM {schema}.inbox "
        "WHERE processed_at < now() - make_interval(secs => $1) LIMIT $2) RETURNING event_id",
        older_than,
        batch,
    )
    return len(deleted)


class EventConsumer:
    def __init__(
        self,
        redis: Redis,
        topic: str,
        group: str,
        consumer: str,
        handler: Handler,
        *,
        verifier: EventVerifier,
        batch: int = 50,
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
        max_deliveries: int = 5,
    ) -> None:
        self._redis, self._stream, self._group, self._consumer = redis, stream_name(topic), group, consumer
        self._topic, self._handler, self._verifier = topic, handler, verifier
        self._batch, self._block_ms = batch, block_ms
        self._claim_idle_ms, self._max_deliveries = claim_idle_ms, max_deliveries

    async def ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self._stream, self._group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _handle(self, entry_id: bytes | str, fields: dict) -> None:
        event = self._verifier.accept(self._topic, entry_id, fields)
        if event is None:
            await self._dead_letter(entry_id, fields)
            return
        try:
            await self._handler(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            EVENTS_CONSUMED.labels(self._stream, self._group, "failed").inc()
            log.warning("event handler failed", stream=self._stream, event_id=event.event_id, error=type(exc).__name__)
            return
        await self._redis.xack(self._stream, self._group, entry_id)
        EVENTS_CONSUMED.labels(self._stream, self._group, "ok").inc()

    async def _dead_letter(self, entry_id: bytes | str, fields: dict) -> None:
        await self._redis.xadd(f"{self._stream}.dead", fields)
        await self._redis.xack(self._stream, self._group, entry_id)

    async def _reclaim(self) -> None:
        """Retries entries pending longer than claim_idle; gives up on over-delivered ones."""
        _next, entries, *_ = await self._redis.xautoclaim(
            self._stream, self._group, self._consumer, self._claim_idle_ms, "0-0", count=self._batch
        )
        if not entries:
            return
        pending = await self._redis.xpending_range(
            self._stream, self._group, min="-", max="+", count=self._batch, consumername=self._consumer
        )
        deliveries = {p["message_id"]: p["times_delivered"] for p in pending}
        for entry_id, fields in entries:
            if fields is None:
                continue
            if deliveries.get(entry_id, 0) > self._max_deliveries:
                log.error("event failed too often, moved to dead letters", stream=self._stream, entry=str(entry_id))
                await self._dead_letter(entry_id, fields)
            else:
                await self._handle(entry_id, fields)

    async def run(self) -> None:
        """Consumes until cancelled; survives Redis restarts."""
        next_reclaim = 0.0
        while True:
            raise_if_cancelled()
            try:
                await self.ensure_group()
                if time.monotonic() >= next_reclaim:
                    await self._reclaim()
                    next_reclaim = time.monotonic() + self._claim_idle_ms / 2000
                response = await self._redis.xreadgroup(
                    self._group, self._consumer, {self._stream: ">"}, count=self._batch, block=self._block_ms
                )
                for _stream, entries in response or ():
                    for entry_id, fields in entries:
                        await self._handle(entry_id, fields)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event consumer error, will retry", stream=self._stream, error=type(exc).__name__)
                await asyncio.sleep(1.0)
