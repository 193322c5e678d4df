"""Scores move the way people expect, on profiles made for it (through the real API and model):
complementary co-founders outrank clones, working-hours overlap and stage count, and the
explanation names shared and complementary skills."""

from __future__ import annotations

import grpc
import pytest

from deploy.local.ephemeral import Mesh
from openhr.matching.v1 import matching_pb2
from openhr.profile.v1 import profile_pb2 as P
from tests.matching.conftest import make_members
from tests.matching.population import ENGINEER, SELLER, variant
from tests.matching.support import Member


@pytest.fixture(scope="module")
async def cast(mesh: Mesh, profiles, profiles_internal, db) -> dict[str, Member]:
    roles = {
        "me": ENGINEER,
        "clone": ENGINEER,
        "seller": SELLER,
        "seller_tokyo": variant(SELLER, timezone="Asia/Tokyo"),
        "seller_growth": variant(SELLER, stages=[P.STARTUP_STAGE_GROWTH]),
    }
    members = await make_members(mesh, profiles, profiles_internal, db, list(roles.values()))
    return dict(zip(roles, members, strict=True))


async def explain(matching, me: Member, them: Member) -> matching_pb2.Explanation:
    response = await matching.GetMatchExplanation(
        matching_pb2.GetMatchExplanationRequest(profile_id=them.profile_id), metadata=me.user.metadata, timeout=30
    )
    return response.explanation


def factor(explanation: matching_pb2.Explanation, which: int) -> float:
    return next(f.score for f in explanation.factors if f.factor == which)


async def test_a_business_co_founder_outranks_a_clone_for_a_founder_seeking_one(matching, cast) -> None:
    seller = await explain(matching, cast["me"], cast["seller"])
    clone = await explain(matching, cast["me"], cast["clone"])
    assert seller.score > clone.score
    assert factor(seller, matching_pb2.FACTOR_SKILL_FIT) > factor(clone, matching_pb2.FACTOR_SKILL_FIT)
    assert seller.complementary_skills[:2] == ["Enterprise Sales", "Fundraising"]
    assert seller.shared_skills == ["Python"]
    assert clone.shared_skills == ["Python", "Go", "Kubernetes", "PostgreSQL"]
    page = await matching.ListMatches(matching_pb2.ListMatchesRequest(page_size=50), metadata=cast["me"].user.metadata)
    order = [c.user_id for c in page.matches]
    assert order.index(cast["seller"].user_id) < order.index(cast["clone"].user_id)


async def test_working_hours_overlap_and_stage_move_the_score(matching, cast) -> None:
    near = await explain(matching, cast["me"], cast["seller"])
    far = await explain(matching, cast["me"], cast["seller_tokyo"])
    assert factor(near, matching_pb2.FACTOR_TIMEZONE_OVERLAP) == 1.0
    assert factor(far, matching_pb2.FACTOR_TIMEZONE_OVERLAP) < 0.5
    assert near.score > far.score
    growth = await explain(matching, cast["me"], cast["seller_growth"])
    assert factor(near, matching_pb2.FACTOR_STAGE_ALIGNMENT) == 1.0
    assert factor(growth, matching_pb2.FACTOR_STAGE_ALIGNMENT) < 0.5
    assert near.score > growth.score


async def test_explanation_has_words_and_a_named_narrative_source(matching, rest, cast) -> None:
    explanation = await explain(matching, cast["me"], cast["seller"])
    assert explanation.narrative_source in (matching_pb2.NARRATIVE_SOURCE_LLM, matching_pb2.NARRATIVE_SOURCE_TEMPLATE)
    assert "Sam" in explanation.narrative and "Enterprise Sales" in explanation.narrative
    details = {f.factor: f.detail for f in explanation.factors}
    assert details[matching_pb2.FACTOR_TIMEZONE_OVERLAP] == "9 hours of overlapping working time"
    assert details[matching_pb2.FACTOR_STAGE_ALIGNMENT] == "You both want the pre seed stage"
    assert details[matching_pb2.FACTOR_EQUITY_ALIGNMENT] == "You both want mostly equity"
    over_rest = await rest.get(
        f"/v1/matches/{cast['seller'].profile_id}/explanation", headers=cast["me"].user.headers
    )
    assert over_rest.status_code == 200
    assert over_rest.json()["explanation"]["sharedSkills"] == ["Python"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await explain(matching, cast["me"], cast["me"])
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
