"""Every profile change emits ProfileChanged through the outbox to the Redis stream."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

from deploy.local.ephemeral import Mesh
from openhr.events.v1 import events_pb2
from services.common.devkeys import user_id_for
from tests.connections import connect
from tests.waiting import eventually


async def _events_for(mesh: Mesh, user_id: str, expected: int) -> list[events_pb2.ProfileChanged]:
    """The user's events on the stream, once there are `expected` of them."""
    redis = Redis.from_url(mesh.redis.url)

    async def mine() -> list[events_pb2.Event]:
        entries = await redis.xrange("events.profile")
        events = [events_pb2.Event.FromString(fields[b"data"]) for _id, fields in entries]
        found = [e for e in events if e.user_id == user_id]
        return found if len(found) >= expected else []

    try:
        events = await eventually(mine, message=f"fewer than {expected} events for {user_id}")
    finally:
        await redis.aclose()
    return [e.profile_changed for e in events]


async def test_each_change_emits_one_event_with_what_changed(mesh: Mesh, rest) -> None:
    email = f"events-{uuid.uuid4().hex}@example.com"
    owner = {"authorization": f"Bearer {mesh.token(email)}"}
    endorser = {"authorization": f"Bearer {mesh.token()}"}
    await rest.post("/v1/profiles", json={"displayName": "Endorser"}, headers=endorser)
    profile = (await rest.post("/v1/profiles", json={"displayName": "Eve"}, headers=owner)).json()["profile"]
    base = f"/v1/profiles/{profile['profileId']}"
    await connect(rest, owner, endorser)  # only matched users endorse each other
    await rest.patch(base, params={"updateMask": "headline"}, json={"headline": "Hello"}, headers=owner)
    skill = (await rest.post(f"{base}/skills", json={"name": "SQL", "proficiency": 4}, headers=owner)).json()["skill"]
    await rest.post(f"{base}/endorsements", json={"skillId": skill["skillId"]}, headers=endorser)
    await rest.delete(f"{base}/skills/{skill['skillId']}", headers=owner)
    rejected = await rest.patch(base, params={"updateMask": "headline"}, json={"headline": "x" * 141}, headers=owner)
    assert rejected.status_code == 400

    events = await _events_for(mesh, user_id_for(email), expected=5)
    assert [list(e.changed_fields) for e in events] == [
        ["*"],
        ["headline"],
        ["skills"],
        ["skills.endorsement_count"],
        ["skills"],
    ]
    assert [e.created for e in events] == [True, False, False, False, False]
    assert [e.profile.version for e in events] == sorted(e.profile.version for e in events)
    assert events[1].profile.headline == "Hello"
    assert [s.name for s in events[2].profile.skills] == ["SQL"]
    assert events[3].profile.skills[0].endorsement_count == 1
    assert list(events[4].profile.skills) == []
