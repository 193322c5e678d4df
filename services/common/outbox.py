"""The transactional outbox: events are written in the same transaction as the change they
describe, then a relay publishes them to Redis Streams. An event is never lost between a
commit and a crash, nor when Redis is down at commit time; it may be published twice, so
consumers are idempotent by event_id."""

from __future__ import annotations

import asyncio
import uuid

import structlog
from google.protobuf import timestamp_pb2
from redis.asyncio import Redis
from sqlalchemy import BigInteger, Column, DateTime, LargeBinary, MetaData, Table, Text, func, select, update
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession

from openhr.events.v1 import events_pb2
from services.common.db import OUTBOX_DIRTY, Database
from services.common.metrics import EVENTS_PUBLISHED, OUTBOX_PENDING

log = structlog.get_logger("outbox")
STREAM_PREFIX = "events."
# Streams are trimmed approximately to this length; consumers are expected to keep up.
STREAM_MAXLEN = 1_000_000


def stream_name(topic: str) -> str:
    return f"{STREAM_PREFIX}{topic}"


def outbox_table(metadata: MetaData, schema: str) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("event_id", UUID(as_uuid=False), nullable=False, unique=True),
        Column("topic", Text, nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True)),
        schema=schema,
    )


def new_event(producer: str, user_id: str, request_id: str = "") -> events_pb2.Event:
    """An envelope with id and time set; the caller fills in the payload."""
    occurred = timestamp_pb2.Timestamp()
    occurred.GetCurrentTime()
    return events_pb2.Event(
        event_id=str(uuid.uuid4()), occur_time=occurred, producer=producer, user_id=user_id, request_id=request_id
    )


async def add_event(session: AsyncSession, table: Table, topic: str, event: events_pb2.Event) -> None:
    await session.execute(
        table.insert().values(event_id=event.event_id, topic=topic, payload=event.SerializeToString())
    )
    session.info[OUTBOX_DIRTY] = True


class OutboxRelay:
    """Publishes unpublished outbox rows in id order; several replicas may run it at once
    (rows are claimed with FOR UPDATE SKIP LOCKED)."""

    def __init__(
        self, db: Database, redis: Redis, table: Table, *, batch: int = 200, poll_interval: float = 1.0
    ) -> None:
        self._db, self._redis, self._table = db, redis, table
        self._batch, self._poll_interval = batch, poll_interval
        self._wakeup = asyncio.Event()
        db.on_outbox_commit(self._wakeup.set)

    async def publish_batch(self) -> int:
        t = self._table
        async with self._db.transaction(None) as session:
            rows = (
                await session.execute(
                    select(t.c.id, t.c.event_id, t.c.topic, t.c.payload)
                    .where(t.c.published_at.is_(None))
                    .order_by(t.c.id)
                    .limit(self._batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                OUTBOX_PENDING.set(0)
                return 0
            async with self._redis.pipeline(transaction=False) as pipe:
                for row in rows:
                    pipe.xadd(
                        stream_name(row.topic),
                        {"event_id": row.event_id, "data": row.payload},
                        maxlen=STREAM_MAXLEN,
                        approximate=True,
                    )
                await pipe.execute()
            await session.execute(update(t).where(t.c.id.in_([r.id for r in rows])).values(published_at=func.now()))
        for row in rows:
            EVENTS_PUBLISHED.labels(row.topic).inc()
        return len(rows)

    async def run(self) -> None:
        backoff = self._poll_interval
        while True:
            self._wakeup.clear()
            try:
                published = await self.publish_batch()
                backoff = self._poll_interval
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox publish failed, will retry", error=type(exc).__name__, retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if published == self._batch:
                continue
            try:
                await asyncio.wait_for(self._wakeup.wait(), self._poll_interval)
            except TimeoutError:
                pass
