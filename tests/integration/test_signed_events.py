"""Events are authenticated by their producer (services/common/event_auth.py): whoever can
write to Redis but holds no producer's key cannot make a consumer act. A forged MatchCreated
does not open a MATCHES_ONLY profile to a stranger, a forged UserDeleted does not lock a user
out; the same events signed by their producer do."""

from __future__ import annotations

import grpc
import pytest
from redis.asyncio import Redis

from deploy.local.ephemeral import Mesh
from openhr.events.v1 import events_pb2
from openhr.profile.v1 import profile_pb2, profile_pb2_grpc
from services.common.outbox import new_event
from tests.events import signed_entry
from tests.users import User, new_user
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def redis(mesh: Mesh):
    client = Redis.from_url(mesh.config.redis_url)
    yield client
    await client.aclose()


def _match_created(first: User, second: User) -> events_pb2.Event:
    event = new_event("matching", first.user_id)
    event.match_created.user_ids.extend([first.user_id, second.user_id])
    return event


def _user_deleted(user: User) -> events_pb2.Event:
    event = new_event("identity", user.user_id)
    event.user_deleted.SetInParent()
    return event


def _forgeries(mesh: Mesh, event: events_pb2.Event) -> list[dict]:
    """The same event unsigned, with a garbage signature, and signed by a service that is not
    the topic's producer (a real key: profile's), presented as the producer's."""
    data = event.SerializeToString()
    other = signed_entry(mesh, "profile", event)
    return [
        {"event_id": event.event_id, "data": data},
        {"event_id": event.event_id, "data": data, "sig": b"\x00" * 64},
        {"event_id": event.event_id, "data": data, "sig": other["sig"]},
    ]


async def _create_profile(rest, user: User, visibility: str) -> str:
    response = await rest.post(
        "/v1/profiles", json={"displayName": "Signed Sam", "visibility": visibility}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    return response.json()["profile"]["profileId"]


async def _view(rest, profile_id: str, viewer: User) -> str:
    """Which view of the profile the viewer gets (a stranger: the limited one; matched: all of it)."""
    answer = await rest.get(f"/v1/profiles/{profile_id}", headers=viewer.headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["view"]


async def test_a_forged_match_created_opens_no_matches_only_profile(mesh: Mesh, rest, redis: Redis) -> None:
    owner, stranger = new_user(mesh, "owner"), new_user(mesh, "stranger")
    control_owner, control_match = new_user(mesh, "owner"), new_user(mesh, "match")
    profile_id = await _create_profile(rest, owner, "VISIBILITY_MATCHES_ONLY")
    control_id = await _create_profile(rest, control_owner, "VISIBILITY_MATCHES_ONLY")
    assert await _view(rest, profile_id, stranger) == "PROFILE_VIEW_LIMITED"

    forged = _forgeries(mesh, _match_created(owner, stranger))
    for fields in forged:
        await redis.xadd("events.matching", fields)
    # Then a MatchCreated matching signed: once it is applied, the forgeries before it were read.
    await redis.xadd("events.matching", signed_entry(mesh, "matching", _match_created(control_owner, control_match)))

    async def control_matched() -> bool:
        return await _view(rest, control_id, control_match) == "PROFILE_VIEW_MATCHED"

    await eventually(control_matched, message="the signed MatchCreated applied")
    assert await _view(rest, profile_id, stranger) == "PROFILE_VIEW_LIMITED"
    # Every consumer group of the stream (profile's, messaging's) sets each forgery aside.
    groups = len(await redis.xinfo_groups("events.matching"))

    async def all_dead() -> bool:
        dead = await redis.xrange("events.matching.dead")
        return (
            sum(fields[b"event_id"] == forged[0]["event_id"].encode() for _id, fields in dead) == len(forged) * groups
        )

    await eventually(all_dead, message="every forgery in every group's dead letters")


async def test_a_forged_user_deleted_locks_nobody_out(mesh: Mesh, profile_channel, redis: Redis) -> None:
    victim, control = new_user(mesh, "victim"), new_user(mesh, "control")
    stub = profile_pb2_grpc.ProfileServiceStub(profile_channel)
    for fields in _forgeries(mesh, _user_deleted(victim)):
        await redis.xadd("events.identity", fields)
    await redis.xadd("events.identity", signed_entry(mesh, "identity", _user_deleted(control)))

    async def refused(user: User) -> bool:
        try:
            await stub.GetMyProfile(profile_pb2.GetMyProfileRequest(), metadata=user.metadata, timeout=5)
        except grpc.aio.AioRpcError as error:
            return error.code() == grpc.StatusCode.UNAUTHENTICATED and error.details() == "account deleted"
        return False

    await eventually(lambda: refused(control), message="the signed UserDeleted applied")
    assert not await refused(victim)
