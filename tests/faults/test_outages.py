"""What users and peers see when a dependency fails, and that nothing is lost."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from redis.asyncio import Redis

from deploy.local.ephemeral import Mesh
from openhr.events.v1 import events_pb2
from openhr.profile.v1 import profile_pb2, profile_pb2_grpc
from services.common.consumer import EventConsumer
from services.common.event_auth import EventVerifier
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(120)


def auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def _health(channel: grpc.aio.Channel) -> int:
    try:
        response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
    except grpc.aio.AioRpcError:
        return -1
    return response.status


async def test_event_committed_while_redis_is_down_is_delivered_once_it_is_back(
    faulty_mesh: Mesh, profile_direct
) -> None:
    received: list[events_pb2.Event] = []

    async def record(event: events_pb2.Event) -> None:
        received.append(event)

    redis = Redis.from_url(faulty_mesh.redis.url)
    verifier = EventVerifier.from_dir(faulty_mesh.config.data_dir / "service-keys")
    consumer = EventConsumer(redis, "profile", "test-outbox", "test-1", record, verifier=verifier, block_ms=200)
    await consumer.ensure_group()
    consuming = asyncio.create_task(consumer.run())
    try:
        faulty_mesh.redis.stop()
        stub = profile_pb2_grpc.ProfileServiceStub(profile_direct)
        created = await stub.CreateProfile(
            profile_pb2.CreateProfileRequest(profile=profile_pb2.Profile(display_name="Outbox Olivia")),
            metadata=auth(faulty_mesh.token()),
            timeout=10,
        )
        connection = await asyncpg.connect(faulty_mesh.config.database_url)
        try:
            pending = await connection.fetchval("SELECT count(*) FROM profile.outbox WHERE published_at IS NULL")
        finally:
            await connection.close()
        assert pending >= 1, "the event must wait in the outbox while Redis is down"

        faulty_mesh.redis.start()

        async def delivered() -> bool:
            return any(e.profile_changed.profile.profile_id == created.profile.profile_id for e in received)

        await eventually(delivered, within=45, message="the outbox event was not delivered")
        event = next(e for e in received if e.profile_changed.profile.profile_id == created.profile.profile_id)
        assert event.profile_changed.created
        assert event.producer == "profile"
        assert event.profile_changed.profile.display_name == "Outbox Olivia"
    finally:
        if not faulty_mesh.redis.is_running():
            faulty_mesh.redis.start()
        consuming.cancel()
        await asyncio.gather(consuming, return_exceptions=True)
        await redis.aclose()


async def test_health_is_not_serving_while_postgres_is_down(faulty_mesh: Mesh, profile_direct) -> None:
    assert await _health(profile_direct) == health_pb2.HealthCheckResponse.SERVING
    token = faulty_mesh.token()
    stub = profile_pb2_grpc.ProfileServiceStub(profile_direct)
    faulty_mesh.postgres.stop()
    try:

        async def not_serving() -> bool:
            return await _health(profile_direct) == health_pb2.HealthCheckResponse.NOT_SERVING

        await eventually(not_serving, message="health still SERVING without Postgres")
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.GetMyProfile(profile_pb2.GetMyProfileRequest(), metadata=auth(token), timeout=15)
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "SELECT" not in (failure.value.details() or "")
    finally:
        faulty_mesh.postgres.start()

    async def serving() -> bool:
        return await _health(profile_direct) == health_pb2.HealthCheckResponse.SERVING

    await eventually(serving, message="not SERVING again after Postgres came back")


async def test_skill_normalization_outage_stores_nothing(faulty_mesh: Mesh, profile_direct) -> None:
    token = faulty_mesh.token()
    stub = profile_pb2_grpc.ProfileServiceStub(profile_direct)
    created = await stub.CreateProfile(
        profile_pb2.CreateProfileRequest(profile=profile_pb2.Profile(display_name="Norma")),
        metadata=auth(token),
        timeout=10,
    )
    profile_id = created.profile.profile_id
    argv = faulty_mesh.config.commands()["enrichment"]
    faulty_mesh.stop_process("enrichment")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.AddSkill(
                profile_pb2.AddSkillRequest(profile_id=profile_id, name="golang", proficiency=3),
                metadata=auth(token),
                timeout=15,
            )
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
        listed = await stub.ListSkills(
            profile_pb2.ListSkillsRequest(profile_id=profile_id), metadata=auth(token), timeout=10
        )
        assert list(listed.skills) == []
    finally:
        faulty_mesh.start_process("enrichment", argv)

    async def normalized_again() -> bool:
        try:
            added = await stub.AddSkill(
                profile_pb2.AddSkillRequest(profile_id=profile_id, name="golang", proficiency=3),
                metadata=auth(token),
                timeout=5,
            )
        except grpc.aio.AioRpcError:
            return False
        return added.skill.name == "Go" and added.skill.taxonomy_id == "go"

    await eventually(normalized_again, message="skills not normalized again after enrichment came back")


async def test_sigterm_drains_in_flight_calls(faulty_mesh: Mesh, profile_direct) -> None:
    """SIGTERM: health NOT_SERVING at once, the call in flight still completes, exit 0."""
    token = faulty_mesh.token()
    stub = profile_pb2_grpc.ProfileServiceStub(profile_direct)
    created = await stub.CreateProfile(
        profile_pb2.CreateProfileRequest(profile=profile_pb2.Profile(display_name="Drain")),
        metadata=auth(token),
        timeout=10,
    )
    blocker = await asyncpg.connect(faulty_mesh.config.database_url)
    observer = await asyncpg.connect(faulty_mesh.config.database_url)
    transaction = blocker.transaction()
    await transaction.start()
    await blocker.execute("SELECT 1 FROM profile.profiles WHERE profile_id = $1 FOR UPDATE", created.profile.profile_id)
    argv = faulty_mesh.config.commands()["profile"]
    process = faulty_mesh.processes["profile"]
    try:
        in_flight = asyncio.ensure_future(
            stub.UpdateProfile(
                profile_pb2.UpdateProfileRequest(
                    profile=profile_pb2.Profile(profile_id=created.profile.profile_id, headline="drained"),
                    update_mask={"paths": ["headline"]},
                ),
                metadata=auth(token),
                timeout=20,
            )
        )

        async def waiting_for_the_lock() -> bool:
            """A connection of the service is blocked by the blocker's row lock. Asked on a
            connection of its own: inside the blocker's transaction, pg_stat_activity would
            answer from the snapshot of its first read, however long we poll."""
            if in_flight.done():
                raise AssertionError(f"the update ended before it waited for the lock: {in_flight.exception()!r}")
            return await observer.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'profile'"
                " AND wait_event_type = 'Lock' AND $1 = ANY(pg_blocking_pids(pid))",
                blocker.get_server_pid(),
            )

        await eventually(waiting_for_the_lock, message="the update never waited for the row lock")
        assert not in_flight.done()
        process.terminate()

        async def not_serving() -> bool:
            return await _health(profile_direct) != health_pb2.HealthCheckResponse.SERVING

        await eventually(not_serving, message="health still SERVING after SIGTERM")
        await transaction.rollback()
        updated = await in_flight
        assert updated.profile.headline == "drained"
        assert await asyncio.to_thread(process.wait, 15) == 0
    finally:
        await blocker.close()
        await observer.close()
        faulty_mesh.processes.pop("profile")
        faulty_mesh.start_process("profile", argv)

    async def serving() -> bool:
        return await _health(profile_direct) == health_pb2.HealthCheckResponse.SERVING

    await eventually(serving, message="the restarted profile service is not SERVING")
