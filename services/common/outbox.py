"""The transactional outbox: events are written in the same transaction as the change they
describe, then a relay publishes them to Redis Streams. An event is never lost between a
commit and a crash, nor when Redis is down at commit time; it may be published twice, so
consumers are idempotent by event_id. Each service schema has an `outbox` table
(services/common/migrations.py creates it)."""

from __future__ import annotations

import asyncio
import uuid

import structlog
from google.protobuf import timestamp_pb2
from redis.asyncio import Redis

from openhr.events.v1 import events_pb2
from services.common.cancellation import raise_if_cancelled
from services.common.db import Database, Tx
from services.common.event_auth import SIGNATURE_FIELD, EventSigner
from services.common.metrics import EVENTS_PUBLISHED, OUTBOX_PENDING

log = structlog.get_logger("outbox")
STREAM_PREFIX = "events."
# Streams are trimmed approximately to this length; consumers are expected to keep up.
STREAM_MAXLEN = 1_000_000


def stream_name(topic: str) -> str:
    return f"{STREAM_PREFIX}{topic}"


def new_event(producer: str, user_id: str, request_id: str = "") -> events_pb2.Event:
    """An envelope with id and time set; the caller fills in the payload."""
    occurred = timestamp_pb2.Timestamp()
    occurred.GetCurrentTime()
    return events_pb2.Event(
        event_id=str(uuid.uuid4()), occur_time=occurred, producer=producer, user_id=user_id, request_id=request_id
    )


async def add_event(tx: Tx, schema: str, topic: str, event: events_pb2.Event) -> None:
    await tx.execute(
        f"INSERT INTO {schema}.outbox (event_id, topic, payload) VALUES ($1, $2, $3)",
        uuid.UUID(event.event_id),
        topic,
        event.SerializeToString(),
    )
    tx.outbox_dirty = True


class OutboxRelay:
    """Publishes unpublished outbox rows in id order, each signed by this service (consumers
    refuse unsigned entries, services.common.event_auth); several replicas may run it at once
    (rows are claimed with FOR UPDATE SKIP LOCKED)."""

    def __init__(
        self,
        db: Database,
        redis: Redis,
        schema: str,
        signer: EventSigner,
        *,
        batch: int = 200,
        poll_interval: float = 1.0,
    ) -> None:
        self._db, self._redis, self._schema, self._signer = db, redis, schema, signer
        self._batch, self._poll_interval = batch, poll_interval
        self._wakeup = asyncio.Event()
        db.on_outbox_commit(self._wakeup.set)

    async def publish_batch(self) -> int:
        async with self._db.transaction(None) as tx:
            rows = await tx.fetch(
                f"SELECT id, event_id, topic, payload FROM {self._schema}.outbox WHERE published_at IS NULL "
                "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch,
            )
            if not rows:
                OUTBOX_PENDING.set(0)
                return 0
            async with self._redis.pipeline(transaction=False) as pipe:
                for row in rows:
                    pipe.xadd(
                        stream_name(row["topic"]),
                        {
                            "event_id": str(row["event_id"]),
                            "data": row["payload"],
                            SIGNATURE_FIELD: self._signer.sign(row["topic"], row["payload"]),
                        },
                        maxlen=STREAM_MAXLEN,
                        approximate=True,
                    )
                await pipe.execute()
            await tx.execute(
                f"UPDATE {self._schema}.outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                [row["id"] for row in rows],
            )
        for row in rows:
            EVENTS_PUBLISHED.labels(row["topic"]).inc()
        return len(rows)

    async def run(self) -> None:
        backoff = self._poll_interval
        while True:
            raise_if_cancelled()
            self._wakeup.clear()
            try:
                published = await self.publish_batch()
                backoff = self._poll_interval
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis or Postgres down: keep the rows, retry
                log.warning("outbox publish failed, will retry", error=type(exc).__name__, retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if published == self._batch:
                continue
            try:
                await asyncio.wait_for(self._wakeup.wait(), self._poll_interval)
            except TimeoutError:
                continue


async def purge_published(tx: Tx, schema: str, older_than: float, batch: int = 5000) -> int:
    """Deletes up to `batch` outbox rows published more than `older_than` seconds ago (never an
    unpublished one); returns how many (services/common/retention.py runs it)."""
    deleted = await tx.fetch(
        f"DELETE FROM {schema}.outbox WHERE id IN (SELECT id FROM {schema}.outbox "
        "WHERE published_at < now() - make_interval(secs => $1) ORDER BY id LIMIT $2) RETURNING id",
        older_than,
        batch,
    )
    return len(deleted)
