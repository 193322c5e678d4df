"""Revoked users: access tokens stay cryptographically valid for their lifetime (15 min), so
every replica of every service learns of deleted accounts from identity's UserDeleted events
and the kit's interceptor refuses their tokens ("account deleted"). Only UserDeleted events identity
signed count (services/common/event_auth.py).

One reader per replica over the `events.identity` stream (services/common/fanout.py's
StreamFanout with a listener: XREAD without a consumer group, every replica sees every entry).
Deleted user ids are kept in memory for the token lifetime plus leeway (TTL). On start, before
the server serves, the last TTL of the stream is read back (XRANGE by time: stream ids are
millisecond timestamps) so that a replica started after a deletion knows it too; the reader
then continues right after the last entry read."""

from __future__ import annotations

import time

import structlog
from cachetools import TTLCache
from redis.asyncio import Redis

from openhr.events.v1 import events_pb2
from services.common.event_auth import EventVerifier
from services.common.fanout import StreamFanout
from services.common.outbox import stream_name

log = structlog.get_logger("revocations")
TOPIC = "identity"
# Access tokens live 15 minutes; 5 minutes of leeway for clock skew and a late event.
TTL_SECONDS = 20 * 60
MAX_ENTRIES = 1_000_000
BACKFILL_BATCH = 1000


class Revocations:
    def __init__(
        self, redis: Redis, verifier: EventVerifier, *, ttl: float = TTL_SECONDS, maxsize: int = MAX_ENTRIES
    ) -> None:
        self._redis, self._ttl, self._verifier = redis, ttl, verifier
        self._stream = stream_name(TOPIC)
        self._deleted: TTLCache[str, bool] = TTLCache(maxsize, ttl)
        self._fanout = StreamFanout(
            redis, TOPIC, key=lambda event: event.user_id, verifier=verifier, listener=self.observe
        )
        self._after = "$"

    def is_revoked(self, user_id: str) -> bool:
        return bool(user_id) and user_id in self._deleted

    def observe(self, event: events_pb2.Event) -> None:
        if event.WhichOneof("payload") == "user_deleted" and event.user_id:
            self._deleted[event.user_id] = True

    async def backfill(self) -> int:
        """Reads the stream's last `ttl` seconds; returns the number of revoked users known."""
        start = f"{int((time.time() - self._ttl) * 1000)}-0"
        while True:
            entries = await self._redis.xrange(self._stream, min=start, max="+", count=BACKFILL_BATCH)
            for entry_id, fields in entries:
                event = self._verifier.accept(TOPIC, entry_id, fields)
                if event is not None:
                    self.observe(event)
            if entries:
                last = entries[-1][0]
                self._after = last.decode() if isinstance(last, bytes) else str(last)
                start = f"({self._after}"
            if len(entries) < BACKFILL_BATCH:
                break
        if self._after == "$":
            # Nothing in the window: read on from the window's start, so an entry added meanwhile is not missed.
            self._after = start
        log.info("revocations loaded", users=len(self._deleted))
        return len(self._deleted)

    async def run(self) -> None:
        await self._fanout.run(after=self._after)
