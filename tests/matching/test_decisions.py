"""Likes, passes and mutual matches: idempotent, final, one match per pair even when both
like at the same moment on two replicas, MatchCreated with exactly the two users."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from redis.asyncio import Redis

from deploy.local.ephemeral import Mesh
from openhr.events.v1 import events_pb2
from openhr.matching.v1 import matching_pb2
from openhr.profile.v1 import profile_pb2
from tests.matching.conftest import make_members
from tests.matching.population import generate
from tests.matching.support import Member
from tests.waiting import eventually

SEED = 101


@pytest.fixture(scope="module")
async def people(mesh: Mesh, profiles, profiles_internal, db, population) -> list[Member]:
    """Fresh members this module may like and pass on (the population stays untouched)."""
    return await make_members(mesh, profiles, profiles_internal, db, generate(30, seed=SEED))


def like(stub, me: Member, them: Member):
    return stub.LikeProfile(
        matching_pb2.LikeProfileRequest(profile_id=them.profile_id), metadata=me.user.metadata, timeout=30
    )


def pass_on(stub, me: Member, them: Member):
    return stub.PassProfile(
        matching_pb2.PassProfileRequest(profile_id=them.profile_id), metadata=me.user.metadata, timeout=30
    )


async def match_events(mesh: Mesh) -> list[events_pb2.Event]:
    redis = Redis.from_url(mesh.redis.url)
    try:
        entries = await redis.xrange("events.matching")
    finally:
        await redis.aclose()
    return [events_pb2.Event.FromString(fields[b"data"]) for _id, fields in entries]


async def shown_to(stub, me: Member) -> dict[str, None]:
    """The user ids of my top 50, best first."""
    page = await stub.ListMatches(matching_pb2.ListMatchesRequest(page_size=50), metadata=me.user.metadata, timeout=30)
    return dict.fromkeys(c.user_id for c in page.matches)


async def test_simultaneous_likes_on_two_replicas_open_exactly_one_match(
    mesh: Mesh, matching, faiss_replica, people, db
) -> None:
    pairs = [(people[i], people[i + 1]) for i in range(0, 20, 2)]
    answers = await asyncio.gather(
        *(call for a, b in pairs for call in (like(matching, a, b), like(faiss_replica, b, a)))
    )
    for i, (a, b) in enumerate(pairs):
        first, second = answers[2 * i], answers[2 * i + 1]
        assert first.mutual or second.mutual
        match = (first if first.mutual else second).match
        assert sorted(match.user_ids) == sorted([a.user_id, b.user_id])
        if first.mutual and second.mutual:
            assert first.match.match_id == second.match.match_id
    ids = [sorted([a.user_id, b.user_id]) for a, b in pairs]
    rows = await db.fetch(
        "SELECT user_a, user_b FROM matching.matches WHERE user_a = ANY($1::uuid[])", [p[0] for p in ids]
    )
    assert sorted([str(r["user_a"]), str(r["user_b"])] for r in rows) == sorted(ids)

    async def announced():
        events = [e.match_created for e in await match_events(mesh) if e.HasField("match_created")]
        mine = [sorted(e.user_ids) for e in events if sorted(e.user_ids) in ids]
        return mine if len(mine) >= len(ids) else None

    created = await eventually(announced, message="MatchCreated for every pair")
    assert sorted(created) == sorted(ids), "exactly one MatchCreated per pair, with exactly the two users"

    a, b = pairs[0]
    for member in (a, b):
        mine = await matching.ListMyMatches(matching_pb2.ListMyMatchesRequest(), metadata=member.user.metadata)
        assert [sorted(m.user_ids) for m in mine.matches] == [sorted([a.user_id, b.user_id])]
        assert (b if member is a else a).user_id not in await shown_to(matching, member)


async def test_likes_are_idempotent_and_passes_final(matching, people, population) -> None:
    me = people[20]
    known = {m.user_id: m for m in (*population, *people)}
    liked, passed = (known[user_id] for user_id in list(await shown_to(matching, me))[:2])
    for _ in range(2):
        assert (await like(matching, me, liked)).mutual is False
        await pass_on(matching, me, passed)
    shown = await shown_to(matching, me)
    assert liked.user_id not in shown and passed.user_id not in shown
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await like(matching, me, passed)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "passed" in caught.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await pass_on(matching, me, liked)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # The passed person liking back makes no match: the pass stands.
    assert (await like(matching, passed, me)).mutual is False
    assert passed.user_id not in await shown_to(matching, me)


async def test_liking_oneself_a_hidden_or_unknown_profile_is_refused(matching, profiles, people, db) -> None:
    me, hidden = people[23], people[24]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await like(matching, me, me)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await profiles.UpdateProfile(
        profile_pb2.UpdateProfileRequest(
            profile=profile_pb2.Profile(profile_id=hidden.profile_id, visibility=profile_pb2.VISIBILITY_PRIVATE),
            update_mask={"paths": ["visibility"]},
        ),
        metadata=hidden.user.metadata,
    )

    async def gone():
        return not await db.fetchval(
            "SELECT discoverable FROM matching.candidates WHERE user_id = $1", hidden.user_id
        )

    await eventually(gone, message="the hidden profile out of discovery")
    assert hidden.user_id not in await shown_to(matching, me)
    for profile_id in (hidden.profile_id, "6d0c3c8e-0000-4000-8000-000000000000"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await matching.LikeProfile(
                matching_pb2.LikeProfileRequest(profile_id=profile_id), metadata=me.user.metadata, timeout=30
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await matching.LikeProfile(matching_pb2.LikeProfileRequest(profile_id="x"), metadata=me.user.metadata)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_messaging_opens_the_conversation_and_its_block_reaches_matching(rest, matching, people, db) -> None:
    a, b = people[25], people[26]
    await like(matching, a, b)
    match = (await like(matching, b, a)).match

    async def conversation_recorded():
        mine = await matching.ListMyMatches(matching_pb2.ListMyMatchesRequest(), metadata=a.user.metadata)
        return mine.matches[0].conversation_id

    # Messaging opens the conversation from MatchCreated; matching records its ConversationOpened.
    conversation_id = await eventually(conversation_recorded, message="the conversation id on the match")
    listed = await rest.get("/v1/conversations", headers=a.user.headers)
    assert [c["matchId"] for c in listed.json()["conversations"]] == [match.match_id]
    assert listed.json()["conversations"][0]["conversationId"] == conversation_id

    blocked = await rest.post(f"/v1/conversations/{conversation_id}:block", json={}, headers=b.user.headers)
    assert blocked.status_code == 200, blocked.text

    async def block_recorded():
        return await db.fetchval(
            "SELECT count(*) FROM matching.blocks WHERE blocker_user_id = $1 AND blocked_user_id = $2",
            b.user_id,
            a.user_id,
        )

    await eventually(block_recorded, message="the block in matching's read model")
    assert a.user_id not in await shown_to(matching, b) and b.user_id not in await shown_to(matching, a)


async def test_rest_like_and_like_back(rest, people) -> None:
    a, b = people[27], people[28]
    first = await rest.post(f"/v1/matches/{b.profile_id}:like", json={}, headers=a.user.headers)
    assert first.status_code == 200 and first.json().get("mutual", False) is False
    second = await rest.post(f"/v1/matches/{a.profile_id}:like", json={}, headers=b.user.headers)
    assert second.status_code == 200 and second.json()["mutual"] is True
    mine = await rest.get("/v1/mutual-matches", headers=a.user.headers)
    assert mine.json()["matches"][0]["matchId"] == second.json()["match"]["matchId"]
    passed = await rest.post(f"/v1/matches/{b.profile_id}:pass", json={}, headers=a.user.headers)
    assert passed.status_code == 400
