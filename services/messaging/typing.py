"""Typing indicators: ephemeral, in Redis with a TTL, never in Postgres's event log.

SetTyping(true) sets `messaging:typing:<conversation>:<user>` for `ttl` seconds and tells the
other participant, with the time the indicator expires; repeating it within half the TTL
only extends the key (throttled: one broadcast per half TTL however fast the client types).
When the TTL passes without a refresh, the replica that set it announces typing=false, so an
indicator stops by itself even when the typist's client goes away."""

from __future__ import annotations

import asyncio
import time
import uuid

from redis.asyncio import Redis

from openhr.messaging.v1 import messaging_pb2
from services.common import errors
from services.common.db import Database
from services.messaging import store
from services.messaging.deliveries import deliver


def _key(conversation_id: str, user_id: str) -> str:
    return f"messaging:typing:{conversation_id}:{user_id}"


class Typing:
    def __init__(self, db: Database, redis: Redis, *, ttl: float) -> None:
        self._db, self._redis, self._ttl = db, redis, ttl
        self._timers: set[asyncio.Task] = set()

    async def set(self, user_id: str, conversation_id: str, typing: bool) -> None:
        async with self._db.transaction(user_id) as tx:
            conversation = await store.find_conversation(tx, conversation_id)
        if conversation is None:
            raise errors.not_found("conversation")
        key = _key(conversation_id, user_id)
        if not typing:
            if await self._redis.delete(key):
                await self._announce(user_id, conversation_id, conversation.user_ids, False)
            return
        token = f"{time.time():.6f}:{uuid.uuid4().hex}"
        previous = await self._redis.set(key, token, px=int(self._ttl * 1000), get=True)
        if previous is not None and time.time() - float(previous.split(b":")[0]) < self._ttl / 2:
            await self._redis.set(key, previous, px=int(self._ttl * 1000))  # extend only
            return
        await self._announce(user_id, conversation_id, conversation.user_ids, True)
        timer = asyncio.create_task(self._expire(user_id, conversation_id, conversation.user_ids, token))
        self._timers.add(timer)
        timer.add_done_callback(self._timers.discard)

    async def _expire(self, user_id: str, conversation_id: str, members: list[str], token: str) -> None:
        """Announces the end of this indicator once its key is gone (a later SetTyping with a
        new token has its own timer)."""
        key = _key(conversation_id, user_id)
        while True:
            await asyncio.sleep(self._ttl)
            current = await self._redis.get(key)
            if current is None:
                await self._announce(user_id, conversation_id, members, False)
                return
            if current.decode() != token:
                return

    async def _announce(self, user_id: str, conversation_id: str, members: list[str], typing: bool) -> None:
        event = messaging_pb2.TypingEvent(conversation_id=conversation_id, user_id=user_id, typing=typing)
        if typing:
            event.expire_time.FromNanoseconds(int((time.time() + self._ttl) * 1e9))
        others = [m for m in members if m != user_id]
        async with self._db.transaction(user_id) as tx:
            await deliver(tx, {m: messaging_pb2.StreamEventsResponse(typing=event) for m in others}, durable=False)

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
