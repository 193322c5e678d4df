"""Who sees how much of a profile: the owner everything, matched users everything, everyone
else signed in the limited view (name, avatar, role, headline, city and country, timezone, top
skills, what they look for); the answer names the view. Over REST, gRPC and grpc-web. Only
matched users endorse each other; services page every discoverable profile, users cannot."""

from __future__ import annotations

import grpc
import pytest

from deploy.local.ephemeral import Mesh
from openhr.profile.v1 import profile_pb2, profile_pb2_grpc
from tests.connections import connect
from tests.enrichment.support import service_metadata
from tests.grpcweb import call_headers, frame, frames
from tests.users import User, new_user

FULL = {
    "displayName": "Hedy",
    "role": "ROLE_TECHNICAL_COFOUNDER",
    "headline": "Radio engineer",
    "summary": "Frequency hopping, the long version.",
    "location": {"city": "Vienna", "countryCode": "AT", "latitude": 48.2, "longitude": 16.37},
    "timezone": "Europe/Vienna",
    "yearsExperience": 12,
    "lookingFor": "A business co-founder.",
    "links": {"githubUsername": "hedy", "websiteUrl": "https://example.com/hedy"},
    "preferences": {"stage": {"stages": ["STARTUP_STAGE_SEED"], "importance": "IMPORTANCE_MUST_HAVE"}},
    "avatarUrl": "https://example.com/hedy.png",
}
PRIVATE_PARTS = ("summary", "links", "preferences", "yearsExperience")


async def create(rest, user: User, body: dict) -> dict:
    response = await rest.post("/v1/profiles", json=body, headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["profile"]


@pytest.fixture
async def trio(mesh: Mesh, rest) -> tuple[User, User, User, dict]:
    """An owner with a full profile and a skill, a matched user and a stranger."""
    owner, matched, stranger = new_user(mesh, "view"), new_user(mesh, "view"), new_user(mesh, "view")
    profile = await create(rest, owner, FULL)
    skill = await rest.post(
        f"/v1/profiles/{profile['profileId']}/skills", json={"name": "Python", "proficiency": 5}, headers=owner.headers
    )
    assert skill.status_code == 200
    await create(rest, matched, {"displayName": "Matched"})
    await create(rest, stranger, {"displayName": "Stranger"})
    await connect(rest, owner.headers, matched.headers)
    return owner, matched, stranger, profile


async def test_rest_views(rest, trio) -> None:
    owner, matched, stranger, profile = trio
    path = f"/v1/profiles/{profile['profileId']}"
    mine = (await rest.get(path, headers=owner.headers)).json()
    assert mine["view"] == "PROFILE_VIEW_OWNER" and mine["profile"]["summary"] == FULL["summary"]
    full = (await rest.get(path, headers=matched.headers)).json()
    assert full["view"] == "PROFILE_VIEW_MATCHED"
    assert full["profile"]["links"]["githubUsername"] == "hedy" and full["profile"]["location"]["latitude"] == 48.2
    assert full["profile"]["preferences"]["stage"]["stages"] == ["STARTUP_STAGE_SEED"]
    limited = (await rest.get(path, headers=stranger.headers)).json()
    assert limited["view"] == "PROFILE_VIEW_LIMITED"
    shown = limited["profile"]
    assert (shown["displayName"], shown["headline"]) == ("Hedy", "Radio engineer")
    assert shown["lookingFor"] == "A business co-founder."
    assert (shown["location"]["city"], shown["location"]["countryCode"]) == ("Vienna", "AT")
    assert shown["location"].get("latitude", 0) == 0 and shown["location"].get("longitude", 0) == 0
    assert shown["timezone"] == "Europe/Vienna" and [s["name"] for s in shown["skills"]] == ["Python"]
    for part in PRIVATE_PARTS:
        assert not shown.get(part), part


async def test_grpc_views(mesh: Mesh, profile_channel, trio) -> None:
    owner, matched, stranger, profile = trio
    stub = profile_pb2_grpc.ProfileServiceStub(profile_channel)
    request = profile_pb2.GetProfileRequest(profile_id=profile["profileId"])
    full = await stub.GetProfile(request, metadata=matched.metadata)
    assert full.view == profile_pb2.PROFILE_VIEW_MATCHED
    assert full.profile.summary == FULL["summary"] and full.profile.years_experience == 12
    limited = await stub.GetProfile(request, metadata=stranger.metadata)
    assert limited.view == profile_pb2.PROFILE_VIEW_LIMITED
    assert not limited.profile.summary and not limited.profile.HasField("links")
    assert not limited.profile.HasField("preferences") and limited.profile.location.latitude == 0
    # A service reading for no user gets the limited view too.
    internal = profile_pb2_grpc.ProfileInternalServiceStub(profile_channel)
    batch = await internal.BatchGetProfiles(
        profile_pb2.BatchGetProfilesRequest(user_ids=[owner.user_id]), metadata=service_metadata(mesh, "matching")
    )
    assert not batch.profiles[0].summary and batch.profiles[0].display_name == "Hedy"


async def test_grpc_web_views(rest, trio) -> None:
    _owner, matched, stranger, profile = trio
    body = frame(profile_pb2.GetProfileRequest(profile_id=profile["profileId"]).SerializeToString())
    for user, view, summary in (
        (matched, profile_pb2.PROFILE_VIEW_MATCHED, FULL["summary"]),
        (stranger, profile_pb2.PROFILE_VIEW_LIMITED, ""),
    ):
        response = await rest.post(
            "/openhr.profile.v1.ProfileService/GetProfile", content=body, headers=call_headers(user.token)
        )
        received = [f async for f in frames(response)]
        answer = profile_pb2.GetProfileResponse.FromString(received[0].payload)
        assert (answer.view, answer.profile.summary) == (view, summary)


async def test_only_matched_users_endorse(rest, trio) -> None:
    owner, matched, stranger, profile = trio
    skills = await rest.get(f"/v1/profiles/{profile['profileId']}/skills", headers=owner.headers)
    skill_id = skills.json()["skills"][0]["skillId"]
    path = f"/v1/profiles/{profile['profileId']}/endorsements"
    refused = await rest.post(path, json={"skillId": skill_id}, headers=stranger.headers)
    assert refused.status_code == 403 and "matched" in refused.json()["message"]
    accepted = await rest.post(path, json={"skillId": skill_id}, headers=matched.headers)
    assert accepted.status_code == 200, accepted.text


async def test_services_page_every_discoverable_profile(mesh: Mesh, profile_channel, rest) -> None:
    users = [new_user(mesh, "discover") for _ in range(3)]
    visibilities = ("VISIBILITY_PUBLIC", "VISIBILITY_MATCHES_ONLY", "VISIBILITY_PRIVATE")
    for user, visibility in zip(users, visibilities, strict=True):
        await create(rest, user, {**FULL, "visibility": visibility})
    internal = profile_pb2_grpc.ProfileInternalServiceStub(profile_channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await internal.ListDiscoverableProfiles(
            profile_pb2.ListDiscoverableProfilesRequest(), metadata=users[0].metadata
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    metadata = service_metadata(mesh, "matching")
    seen, token = {}, ""
    while True:
        page = await internal.ListDiscoverableProfiles(
            profile_pb2.ListDiscoverableProfilesRequest(page_size=7, page_token=token), metadata=metadata
        )
        assert len(page.profiles) <= 7
        seen.update({p.user_id: p for p in page.profiles})
        token = page.next_page_token
        if not token:
            break
    public, matches_only, private = (u.user_id for u in users)
    assert public in seen and matches_only in seen and private not in seen
    assert seen[matches_only].summary == FULL["summary"] and seen[public].location.latitude == 48.2
