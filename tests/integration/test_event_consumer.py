"""The Redis Streams consumer of the kit: at-least-once with retries, dead letters for
events that keep failing, and unsigned or undecodable entries set aside."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.asyncio import Redis

from deploy.local.infra import LocalRedis, free_port
from openhr.events.v1 import events_pb2
from services.common.consumer import EventConsumer
from services.common.event_auth import EventSigner, EventVerifier
from services.common.outbox import new_event
from services.common.service_auth import ensure_service_key
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def redis(tmp_path: Path):
    server = LocalRedis(data_dir=tmp_path / "redis", port=free_port())
    server.start()
    client = Redis.from_url(server.url)
    yield client
    await client.aclose()
    server.stop()


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    """The key directory of a producer named like the stream's topic, "test"."""
    ensure_service_key(tmp_path / "keys", "test")
    return tmp_path / "keys"


def _event(text: str) -> events_pb2.Event:
    event = new_event("test", "00000000-0000-0000-0000-000000000001")
    event.profile_changed.profile.display_name = text
    return event


async def _publish(redis: Redis, keys: Path, *events: events_pb2.Event) -> None:
    """As the producer's outbox relay publishes: signed."""
    for event in events:
        data = event.SerializeToString()
        await redis.xadd(
            "events.test",
            {"event_id": event.event_id, "data": data, "sig": EventSigner(keys, "test").sign("test", data)},
        )


async def test_failed_event_is_retried_then_acknowledged(redis: Redis, keys: Path) -> None:
    attempts: dict[str, int] = {}

    async def flaky(event: events_pb2.Event) -> None:
        name = event.profile_changed.profile.display_name
        attempts[name] = attempts.get(name, 0) + 1
        if name == "flaky" and attempts[name] < 3:
            raise RuntimeError("transient")

    consumer = EventConsumer(
        redis, "test", "g", "c1", flaky, verifier=EventVerifier.from_dir(keys), block_ms=50, claim_idle_ms=100
    )
    await consumer.ensure_group()
    await _publish(redis, keys, _event("fine"), _event("flaky"))
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(lambda: attempts.get("flaky", 0) >= 3, message="the failing event was not retried")

        async def all_acknowledged() -> bool:
            return (await redis.xpending("events.test", "g"))["pending"] == 0

        await eventually(all_acknowledged, message="events still pending")
        assert attempts == {"fine": 1, "flaky": 3}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_event_that_keeps_failing_goes_to_dead_letters(redis: Redis, keys: Path) -> None:
    async def broken(event: events_pb2.Event) -> None:
        raise RuntimeError("always")

    consumer = EventConsumer(
        redis,
        "test",
        "g",
        "c1",
        broken,
        verifier=EventVerifier.from_dir(keys),
        block_ms=50,
        claim_idle_ms=50,
        max_deliveries=2,
    )
    await consumer.ensure_group()
    poison = _event("poison")
    await _publish(redis, keys, poison)
    await redis.xadd("events.test", {"event_id": "garbage", "data": b"\xff\xfe not a proto"})
    task = asyncio.create_task(consumer.run())
    try:

        async def both_dead() -> bool:
            return await redis.xlen("events.test.dead") == 2

        await eventually(both_dead, message="not both entries in the dead letters")
        dead = await redis.xrange("events.test.dead")
        assert {fields[b"event_id"] for _id, fields in dead} == {poison.event_id.encode(), b"garbage"}
        assert (await redis.xpending("events.test", "g"))["pending"] == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_consumer_stops_whenever_it_is_cancelled(redis: Redis, keys: Path) -> None:
    """A service's shutdown cancels its consumers; a cancel that lands mid-command must stop
    the loop too (redis-py once swallowed one and the consumer read on forever)."""

    async def handler(event: events_pb2.Event) -> None:
        await asyncio.sleep(0)

    for turn in range(40):
        consumer = EventConsumer(
            redis, "test", "g", f"c{turn}", handler, verifier=EventVerifier.from_dir(keys), block_ms=5, claim_idle_ms=10
        )
        await _publish(redis, keys, _event(f"e{turn}"))
        task = asyncio.create_task(consumer.run())
        # Not a wait for anything: the cancel lands at a different point of the loop each turn.
        await asyncio.sleep(0.002 * (turn % 10))
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        assert done and task.cancelled(), f"still running 5 s after cancel() (turn {turn})"
