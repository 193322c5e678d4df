"""A client too slow to drain its stream cannot grow server memory: its bounded queue
overflows, the stream ends with UNAVAILABLE and its cursor, and resuming from that cursor
delivers the rest once and in order.

The slow client is this test itself: it drives the servicer's stream generator in process
(real Postgres and Redis of the mesh, a queue of 2) and does not read while messages arrive."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from redis.asyncio import Redis

from deploy.local.ephemeral import Mesh
from services.common.db import Database
from services.common.errors import DomainError
from services.common.event_auth import EventVerifier
from services.messaging.presence import Presence
from services.messaging.stream import EventStreams, live_fanout
from tests.messaging.support import WAIT, matched_pair, reading, send
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(120)


async def test_a_slow_stream_is_closed_with_a_resumable_cursor(mesh: Mesh, channel_a) -> None:
    alice, bob, conversation_id = await matched_pair(mesh, channel_a)
    db = Database(mesh.config.database_url, app_role="messaging_app", pool_size=2)
    redis = Redis.from_url(mesh.redis.url)
    live = live_fanout(redis, capacity=2, verifier=EventVerifier.from_dir(mesh.config.service_keys))
    reader = asyncio.create_task(live.run())
    streams = EventStreams(db, live, Presence(db, redis, ttl=30, throttle=5), heartbeat=30, keep_events=5000)
    stream = streams.stream(bob.user_id, None)
    try:
        opened = await anext(stream)
        assert opened.WhichOneof("event") == "heartbeat"
        texts = [f"m{i}" for i in range(8)]
        for text in texts:
            await send(channel_a, alice, conversation_id, text)
        delivered: list[str] = []
        with pytest.raises(DomainError) as closed:
            while True:  # now the client reads: what was queued, then the end
                event = await asyncio.wait_for(anext(stream), 60)
                if event.WhichOneof("event") == "message":
                    delivered.append(event.message.message.text)
        assert closed.value.code == grpc.StatusCode.UNAVAILABLE
        cursor = closed.value.metadata["cursor"]
        # What was queued, possibly caught up from Postgres: a prefix, in order.
        assert delivered == texts[: len(delivered)]
    finally:
        await stream.aclose()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await redis.aclose()
        await db.close()

    async with reading(channel_a, bob, cursor) as resumed:
        await send(channel_a, alice, conversation_id, "after")
        await eventually(lambda: "after" in resumed.texts, message="the rest after the cursor", within=WAIT)
    assert delivered + resumed.texts == [*texts, "after"]
