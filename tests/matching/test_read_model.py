"""The read model follows the events: an edit changes rankings within seconds, stale events
lose to newer ones, hidden and deleted users vanish, and erasure takes everything."""

from __future__ import annotations

import numpy as np
import pytest

from deploy.local.ephemeral import Mesh
from openhr.common.v1 import user_data_pb2, user_data_pb2_grpc
from openhr.matching.v1 import matching_pb2
from openhr.profile.v1 import profile_pb2
from tests.enrichment.support import service_metadata
from tests.matching.conftest import make_members
from tests.matching.population import generate
from tests.matching.support import Member, handled, publish_embeddings
from tests.waiting import eventually


@pytest.fixture(scope="module")
async def people(mesh: Mesh, profiles, profiles_internal, db, population) -> list[Member]:
    return await make_members(mesh, profiles, profiles_internal, db, generate(12, seed=202))


async def rank_of(matching, me: Member, them: Member) -> int | None:
    page = await matching.ListMatches(matching_pb2.ListMatchesRequest(page_size=50), metadata=me.user.metadata)
    order = [c.user_id for c in page.matches]
    return order.index(them.user_id) if them.user_id in order else None


async def test_an_edit_changes_rankings_within_seconds(mesh: Mesh, matching, profiles, people, db) -> None:
    me = next(p for p in people if p.generated.archetype == "technical")
    them = next(p for p in people if p.generated.archetype == "design")
    before = await rank_of(matching, me, them)
    # They rewrite their profile as the business co-founder `me` is looking for.
    update = profile_pb2.UpdateProfileRequest(
        profile=profile_pb2.Profile(
            profile_id=them.profile_id,
            role=profile_pb2.ROLE_BUSINESS_COFOUNDER,
            headline="Commercial founder: enterprise sales, fundraising and partnerships",
            looking_for="Looking for a technical co-founder who can build the product and lead engineering.",
        ),
        update_mask={"paths": ["role", "headline", "looking_for"]},
    )
    await profiles.UpdateProfile(update, metadata=them.user.metadata)
    # The enrichment service re-embeds the edited texts; matching follows its ProfileEmbedded.

    async def moved_up():
        now = await rank_of(matching, me, them)
        return now is not None and (before is None or now < before)

    await eventually(moved_up, message="the edited profile ranking higher", within=30)


async def test_stale_events_lose_to_newer_ones(mesh: Mesh, people, db) -> None:
    member = people[1]
    query = "SELECT profile_version, offer::real[] AS offer FROM matching.vectors WHERE user_id = $1"
    stored = await db.fetchrow(query, member.user_id)
    stale = np.full(384, 1 / np.sqrt(384), dtype=np.float32)
    member.version -= 1
    (event_id,) = await publish_embeddings(mesh, [member], {member.user_id: (stale, stale)})
    member.version += 1
    await eventually(lambda: handled(db, event_id), message="the stale event consumed")
    after = await db.fetchrow(query, member.user_id)
    assert after["profile_version"] == stored["profile_version"] == member.version
    assert after["offer"] == stored["offer"]


async def test_deleted_users_vanish_and_erasure_takes_everything(
    mesh: Mesh, matching, rest, matching_channel, people, db
) -> None:
    me, leaving = people[3], people[4]
    await matching.LikeProfile(
        matching_pb2.LikeProfileRequest(profile_id=leaving.profile_id), metadata=me.user.metadata
    )
    await matching.LikeProfile(
        matching_pb2.LikeProfileRequest(profile_id=me.profile_id), metadata=leaving.user.metadata
    )
    user_data = user_data_pb2_grpc.UserDataServiceStub(matching_channel)
    exported = await user_data.ExportUserData(
        user_data_pb2.ExportUserDataRequest(user_id=leaving.user_id), metadata=service_metadata(mesh, "identity")
    )
    data = exported.data
    assert exported.service == "matching"
    assert [d["targetUserId"] for d in data["decisions"]] == [me.user_id]
    assert sorted(data["matches"][0]["userIds"]) == sorted([me.user_id, leaving.user_id])
    # DELETE /v1/me: identity fans out to every user data peer, matching among them.
    deleted = await rest.delete("/v1/me", headers=leaving.user.headers)
    assert deleted.status_code == 200, deleted.text
    for table, column in (
        ("candidates", "user_id"),
        ("vectors", "user_id"),
        ("decisions", "actor_user_id"),
        ("decisions", "target_user_id"),
        ("matches", "user_a"),
        ("matches", "user_b"),
    ):
        assert await db.fetchval(f"SELECT count(*) FROM matching.{table} WHERE {column} = $1", leaving.user_id) == 0
    mine = await matching.ListMyMatches(matching_pb2.ListMyMatchesRequest(), metadata=me.user.metadata)
    assert not mine.matches
    for other in people[5:8]:
        assert await rank_of(matching, other, leaving) is None
