"""StreamMatchFeed: a snapshot, the end-of-snapshot marker, then live mutual matches,
re-ranked candidates and removals, heartbeats; a reconnect with the last cursor gets the
mutual matches it missed."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from deploy.local.ephemeral import Mesh
from openhr.matching.v1 import matching_pb2
from openhr.profile.v1 import profile_pb2
from tests.matching.conftest import make_members
from tests.matching.population import ENGINEER, SELLER, variant
from tests.matching.support import Member


@pytest.fixture(scope="module")
async def cast(mesh: Mesh, profiles, profiles_internal, db) -> list[Member]:
    """A founder and four people made to rank at the top of their feed."""
    made = [ENGINEER, *(variant(SELLER, display_name=f"Seller {i}") for i in range(5))]
    return await make_members(mesh, profiles, profiles_internal, db, made)


class Feed:
    """An open StreamMatchFeed call read one event at a time."""

    def __init__(self, stub, me: Member, **request) -> None:
        self.call = stub.StreamMatchFeed(
            matching_pb2.StreamMatchFeedRequest(**request), metadata=me.user.metadata, timeout=120
        )

    async def next(self, kind: str, about: str = "") -> matching_pb2.StreamMatchFeedResponse:
        """The next event of `kind` (for `about`'s user, when given); heartbeats, and candidates
        who are someone else, pass by."""
        while True:
            event = await asyncio.wait_for(self.call.read(), 60)
            assert event is not grpc.aio.EOF
            received = event.WhichOneof("event")
            if received == kind and (not about or event.candidate.user_id == about):
                return event
            assert received in ("heartbeat", "candidate"), event

    async def snapshot(self) -> list[matching_pb2.MatchCard]:
        cards = []
        while True:
            event = await asyncio.wait_for(self.call.read(), 60)
            if event.WhichOneof("event") == "end_of_snapshot":
                return cards
            assert event.WhichOneof("event") == "candidate", event
            cards.append(event.candidate)


async def like(stub, me: Member, them: Member) -> matching_pb2.LikeProfileResponse:
    request = matching_pb2.LikeProfileRequest(profile_id=them.profile_id)
    return await stub.LikeProfile(request, metadata=me.user.metadata)


async def test_snapshot_marker_heartbeats_and_live_events(mesh: Mesh, matching, faiss_replica, profiles, cast) -> None:
    me, first, second, third, *_ = cast
    feed = Feed(faiss_replica, me, initial_size=10)
    shown = {card.user_id for card in await feed.snapshot()}
    assert {member.user_id for member in cast[1:]} <= shown
    await feed.next("heartbeat")

    # A mutual match made on the other replica reaches this feed.
    await like(matching, first, me)
    match = (await like(matching, me, first)).match
    event = await feed.next("mutual_match")
    assert event.mutual_match.match_id == match.match_id and event.cursor

    # A candidate who edits their profile is sent again, re-ranked (once the edit and its new
    # embeddings reach the read model).
    await profiles.UpdateProfile(
        profile_pb2.UpdateProfileRequest(
            profile=profile_pb2.Profile(profile_id=second.profile_id, headline="Sold payments software to 40 banks"),
            update_mask={"paths": ["headline"]},
        ),
        metadata=second.user.metadata,
    )
    event = await feed.next("candidate", about=second.user_id)
    assert event.candidate.headline == "Sold payments software to 40 banks"

    # A candidate who hides their profile leaves the feed.
    await profiles.UpdateProfile(
        profile_pb2.UpdateProfileRequest(
            profile=profile_pb2.Profile(profile_id=third.profile_id, visibility=profile_pb2.VISIBILITY_PRIVATE),
            update_mask={"paths": ["visibility"]},
        ),
        metadata=third.user.metadata,
    )
    event = await feed.next("removed_profile_id")
    assert event.removed_profile_id == third.profile_id
    feed.call.cancel()


async def test_a_reconnect_with_the_cursor_gets_missed_matches(matching, faiss_replica, cast) -> None:
    me, *_, fourth, fifth = cast
    feed = Feed(faiss_replica, me, initial_size=3)
    await feed.snapshot()
    await like(matching, fourth, me)
    await like(matching, me, fourth)
    cursor = (await feed.next("mutual_match")).cursor
    feed.call.cancel()
    # While the client is away, another match.
    await like(matching, fifth, me)
    missed = (await like(matching, me, fifth)).match
    resumed = Feed(faiss_replica, me, initial_size=3, resume_cursor=cursor)
    kinds = []
    while True:
        event = await asyncio.wait_for(resumed.call.read(), 60)
        kinds.append(event.WhichOneof("event"))
        if kinds[-1] == "mutual_match":
            assert event.mutual_match.match_id == missed.match_id
        if kinds[-1] == "end_of_snapshot":
            break
    assert kinds[-2:] == ["mutual_match", "end_of_snapshot"] and set(kinds[:-2]) == {"candidate"}
    resumed.call.cancel()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await Feed(faiss_replica, me, resume_cursor="abc").next("candidate")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
