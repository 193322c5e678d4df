"""Presence: online while a user has an open StreamEvents call (any replica), away when they
said so, offline otherwise. Ephemeral, in Redis only.

Each open stream is a member of the sorted set `messaging:presence:<user>` scored by when it
expires; the stream's heartbeat pushes that forward, so a replica that dies leaves nothing
behind for longer than `ttl`. The people a user chats with hear a PresenceEvent when the
user's state changes, at most once per `throttle` seconds per user and replica (a change
inside the window is sent when it ends, if it still holds): heartbeats never broadcast."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import structlog
from cachetools import TTLCache
from redis.asyncio import Redis
from redis.exceptions import RedisError

from openhr.messaging.v1 import messaging_pb2
from services.common.db import Database
from services.messaging import store
from services.messaging.deliveries import deliver

log = structlog.get_logger("presence")
ONLINE, AWAY, OFFLINE = (
    messaging_pb2.PRESENCE_STATE_ONLINE,
    messaging_pb2.PRESENCE_STATE_AWAY,
    messaging_pb2.PRESENCE_STATE_OFFLINE,
)
# How long "away" holds without a new SetPresence.
AWAY_SECONDS = 3600


def _streams_key(user_id: str) -> str:
    return f"messaging:presence:{user_id}"


def _away_key(user_id: str) -> str:
    return f"messaging:away:{user_id}"


class Presence:
    def __init__(self, db: Database, redis: Redis, *, ttl: float, throttle: float) -> None:
        self._db, self._redis, self._ttl, self._throttle = db, redis, ttl, throttle
        # user -> (state, when) last broadcast here; forgotten after the throttle window.
        self._announced: TTLCache[str, tuple[int, float]] = TTLCache(maxsize=100_000, ttl=max(throttle, 0.001))
        self._deferred: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task] = set()

    async def is_connected(self, user_id: str) -> bool:
        """Whether the user has a stream open; True when Redis cannot tell (a send must not
        fail, nor notify, because presence is unknown)."""
        try:
            return await self._redis.zcount(_streams_key(user_id), time.time(), "+inf") > 0
        except RedisError as exc:
            log.warning("presence unknown", error=type(exc).__name__)
            return True

    async def state(self, user_id: str) -> int:
        key = _streams_key(user_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(key, "-inf", time.time())
            pipe.zcard(key)
            pipe.exists(_away_key(user_id))
            _, streams, away = await pipe.execute()
        if not streams:
            return OFFLINE
        return AWAY if away else ONLINE

    async def _touch(self, user_id: str, stream_id: str) -> None:
        key = _streams_key(user_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {stream_id: time.time() + self._ttl})
            pipe.expire(key, int(self._ttl) + 1)
            await pipe.execute()

    @asynccontextmanager
    async def connected(self, user_id: str) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        """Marks one open stream of the user; yields the heartbeat to call while it stays open."""
        stream_id = uuid.uuid4().hex
        await self._touch(user_id, stream_id)
        await self.changed(user_id)

        async def heartbeat() -> None:
            try:
                await self._touch(user_id, stream_id)
            except RedisError as exc:  # the stream goes on; presence catches up when Redis is back
                log.warning("presence not refreshed", error=type(exc).__name__)

        try:
            yield heartbeat
        finally:
            try:
                await self._redis.zrem(_streams_key(user_id), stream_id)
                await self.changed(user_id)
            except Exception as exc:  # Redis or Postgres down: the entry expires by itself
                log.warning("presence not cleared", error=type(exc).__name__)

    async def set_away(self, user_id: str, away: bool) -> None:
        if away:
            await self._redis.set(_away_key(user_id), 1, ex=AWAY_SECONDS)
        else:
            await self._redis.delete(_away_key(user_id))
        await self.changed(user_id)

    async def changed(self, user_id: str) -> None:
        """Broadcasts the user's state if it changed, throttled."""
        state = await self.state(user_id)
        last_state, last_time = self._announced.get(user_id, (None, 0.0))
        if state == last_state:
            return
        wait = last_time + self._throttle - time.monotonic()
        if wait > 0:
            if user_id not in self._deferred:
                self._deferred[user_id] = asyncio.get_running_loop().call_later(wait, self._run_deferred, user_id)
            return
        self._announced[user_id] = (state, time.monotonic())
        await self._broadcast(user_id, state)

    def _run_deferred(self, user_id: str) -> None:
        self._deferred.pop(user_id, None)
        task = asyncio.create_task(self.changed(user_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _broadcast(self, user_id: str, state: int) -> None:
        event = messaging_pb2.PresenceEvent(user_id=user_id, state=state)
        async with self._db.transaction(user_id) as tx:
            partners = await store.partners(tx, user_id)
            if partners:
                await deliver(
                    tx, {p: messaging_pb2.StreamEventsResponse(presence=event) for p in partners}, durable=False
                )
