"""StreamEvents: a user's durable events replayed from Postgres after their cursor, then live
events from this replica's fan-out of `messaging.live`, with no gap and no duplicate.

The order of steps is what makes the seam safe: subscribe to live events first, then read
the log head and replay from Postgres, then follow the live queue, skipping any event at or
below the cursor already sent. A live event beyond the next expected cursor means one was
missed (published out of order by another replica's relay, or lost by Redis): the gap is
read from Postgres, which has every committed event. A client too slow to drain its
bounded queue is disconnected with its cursor, and resumes from there."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc
from redis.asyncio import Redis

from openhr.common.v1 import common_pb2
from openhr.messaging.v1 import messaging_pb2
from services.common import errors
from services.common.cancellation import raise_if_cancelled
from services.common.db import Database
from services.common.event_auth import EventVerifier
from services.common.fanout import StreamFanout, SubscriberOverflow
from services.messaging import store
from services.messaging.deliveries import LIVE_TOPIC, now
from services.messaging.presence import Presence

REPLAY_PAGE = 200


def live_fanout(redis: Redis, capacity: int, verifier: EventVerifier) -> StreamFanout:
    """This replica's one reader of the live stream, handing events to their user's streams."""
    return StreamFanout(redis, LIVE_TOPIC, key=lambda event: event.user_id, capacity=capacity, verifier=verifier)


def fell_behind(cursor: int) -> errors.DomainError:
    return errors.DomainError(
        f"the stream fell behind; reconnect with cursor {cursor}",
        grpc.StatusCode.UNAVAILABLE,
        common_pb2.ERROR_REASON_DEPENDENCY_UNAVAILABLE,
        metadata={"cursor": str(cursor)},
    )


class EventStreams:
    def __init__(
        self, db: Database, live: StreamFanout, presence: Presence, *, heartbeat: float, keep_events: int
    ) -> None:
        self._db, self._live, self._presence = db, live, presence
        self._heartbeat, self._keep = heartbeat, keep_events

    async def _replay(self, user_id: str, after: int) -> AsyncIterator[tuple[int, messaging_pb2.StreamEventsResponse]]:
        """Every logged event after `after`, in pages, each page in its own short transaction."""
        while True:
            async with self._db.transaction(user_id) as tx:
                page = await store.stream_events_after(tx, user_id, after, REPLAY_PAGE)
            for seq, payload in page:
                after = seq
                yield seq, messaging_pb2.StreamEventsResponse.FromString(payload)
            if len(page) < REPLAY_PAGE:
                return

    async def _start(self, user_id: str, cursor: int | None) -> tuple[int, messaging_pb2.StreamEventsResponse | None]:
        """Where to replay from, and a resync event when the cursor cannot be honoured."""
        async with self._db.transaction(user_id) as tx:
            await store.trim_stream(tx, user_id, self._keep)
            last_seq, trimmed_seq = await store.stream_head(tx, user_id)
        if cursor is None:
            return last_seq, None
        if trimmed_seq <= cursor <= last_seq:
            return cursor, None
        reason = "cursor too old: its events are no longer kept" if cursor < trimmed_seq else "unknown cursor"
        resync = messaging_pb2.StreamEventsResponse(
            cursor=str(last_seq), event_time=now(), resync=messaging_pb2.ResyncEvent(reason=reason)
        )
        return last_seq, resync

    async def stream(self, user_id: str, cursor: int | None) -> AsyncIterator[messaging_pb2.StreamEventsResponse]:
        async with self._live.subscribe(user_id) as live, self._presence.connected(user_id) as heartbeat:
            sent, resync = await self._start(user_id, cursor)
            if resync is not None:
                yield resync
            async for seq, response in self._replay(user_id, sent):
                sent = seq
                yield response
            # Live from here: tells the client its position (also when it started from now).
            yield messaging_pb2.StreamEventsResponse(cursor=str(sent), event_time=now(), heartbeat=now())
            touched = time.monotonic()
            while True:
                raise_if_cancelled()  # the client went away
                if time.monotonic() - touched >= self._heartbeat:
                    await heartbeat()  # presence, also while busy
                    touched = time.monotonic()
                try:
                    delivery = await live.next(self._heartbeat)
                except SubscriberOverflow:
                    raise fell_behind(sent) from None
                if delivery is None:
                    yield messaging_pb2.StreamEventsResponse(event_time=now(), heartbeat=now())
                    continue
                response = delivery.stream_delivery.event
                if not response.cursor:  # typing, presence: not logged, not resumable
                    yield response
                    continue
                seq = int(response.cursor)
                if seq <= sent:
                    continue  # replayed already
                if seq == sent + 1:
                    sent = seq
                    yield response
                    continue
                async for gap_seq, missed in self._replay(user_id, sent):
                    sent = gap_seq
                    yield missed
