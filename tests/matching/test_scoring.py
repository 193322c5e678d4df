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
from tests.support.llm_server import DEFAULT_ANSWER


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
    assert cast["seller"].user_id in order
    if cast["clone"].user_id in order:  # among the population, the clone may not make the top 50 at all
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


async def test_explanation_in_words_with_the_llm_narrative_and_its_source(matching, rest, cast, llm_server) -> None:
    explanation = await explain(matching, cast["me"], cast["seller"])
    assert explanation.narrative_source == matching_pb2.NARRATIVE_SOURCE_LLM
    assert explanation.narrative == DEFAULT_ANSWER
    prompts = [str(r["messages"]) for r in llm_server.requests]
    assert any("Enterprise Sales" in p and "9 hours of overlapping working time" in p for p in prompts)
    details = {f.factor: f.detail for f in explanation.factors}
    assert details[matching_pb2.FACTOR_TIMEZONE_OVERLAP] == "9 hours of overlapping working time"
    assert details[matching_pb2.FACTOR_STAGE_ALIGNMENT] == "You both want the pre seed stage"
    assert details[matching_pb2.FACTOR_EQUITY_ALIGNMENT] == "You both want mostly equity"
    # Cached: asked again, the LLM is not called again.
    calls = len(llm_server.requests)
    over_rest = await rest.get(f"/v1/matches/{cast['seller'].profile_id}/explanation", headers=cast["me"].user.headers)
    assert over_rest.status_code == 200
    assert over_rest.json()["explanation"]["sharedSkills"] == ["Python"]
    assert over_rest.json()["explanation"]["narrativeSource"] == "NARRATIVE_SOURCE_LLM"
    assert len(llm_server.requests) == calls
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await explain(matching, cast["me"], cast["me"])
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_template_narratives_when_the_llm_or_enrichment_is_out(matching, faiss_replica, cast, llm_server) -> None:
    llm_server.fail(500)
    try:
        explanation = await explain(matching, cast["seller"], cast["me"])  # not explained (cached) before
    finally:
        llm_server.reset()
    assert explanation.narrative_source == matching_pb2.NARRATIVE_SOURCE_TEMPLATE
    assert explanation.narrative
    # The FAISS replica runs with MATCHING_NARRATIVES=template: its own words, no enrichment call.
    calls = len(llm_server.requests)
    own = await explain(faiss_replica, cast["me"], cast["seller_tokyo"])
    assert own.narrative_source == matching_pb2.NARRATIVE_SOURCE_TEMPLATE
    assert own.narrative.startswith("Sam brings Enterprise Sales, Fundraising, Business Development.")
    assert "1 hour of overlapping working time." in own.narrative
    assert len(llm_server.requests) == calls
