"""ListMatches on a generated population: ranked, filtered, excluded, paged over a snapshot."""

from __future__ import annotations

import grpc
import pytest

from openhr.matching.v1 import matching_pb2
from openhr.profile.v1 import profile_pb2 as P
from tests.matching.support import Member


async def list_matches(matching, member: Member, **fields) -> matching_pb2.ListMatchesResponse:
    return await matching.ListMatches(
        matching_pb2.ListMatchesRequest(**fields), metadata=member.user.metadata, timeout=30
    )


async def test_top_twenty_best_first_with_breakdown_and_never_oneself(matching, population) -> None:
    me = population[0]
    page = await list_matches(matching, me)
    assert len(page.matches) == 20 and page.next_page_token and not page.stale
    scores = [card.score for card in page.matches]
    assert scores == sorted(scores, reverse=True)
    assert me.user_id not in {card.user_id for card in page.matches}
    for card in page.matches:
        assert [f.factor for f in card.factors] == [1, 2, 3, 4]
        assert card.score == pytest.approx(sum(f.score * f.weight for f in card.factors), abs=1e-3)
        assert card.summary and card.top_skills and card.display_name
        # A card never carries coordinates (the population's profiles all have some).
        assert card.location.latitude == 0 and card.location.longitude == 0 and card.location.city
        assert card.state == matching_pb2.MATCH_STATE_CANDIDATE


async def rows_of(db, user_ids) -> dict[str, dict]:
    rows = await db.fetch("SELECT * FROM matching.candidates WHERE user_id = ANY($1::uuid[])", list(user_ids))
    return {str(r["user_id"]): dict(r) for r in rows}


@pytest.mark.parametrize(
    ("fields", "holds"),
    [
        ({"roles": [P.ROLE_BUSINESS_COFOUNDER]}, lambda r: r["role"] == "ROLE_BUSINESS_COFOUNDER"),
        (
            {"stages": [P.STARTUP_STAGE_SEED, P.STARTUP_STAGE_SERIES_A]},
            lambda r: {"STARTUP_STAGE_SEED", "STARTUP_STAGE_SERIES_A"} & set(r["stages"]),
        ),
        ({"remote_only": True}, lambda r: "WORK_MODE_REMOTE" in r["work_modes"]),
        ({"commitments": [P.COMMITMENT_PART_TIME]}, lambda r: r["commitment"] == "COMMITMENT_PART_TIME"),
        ({"skills": ["figma", "Fundraising"]}, lambda r: {"figma", "fundraising"} & set(r["skill_keys"])),
        ({"country_code": "US"}, lambda r: r["country_code"] == "US"),
    ],
)
async def test_filters_hold_for_every_card(matching, population, db, fields, holds) -> None:
    page = await list_matches(matching, population[1], page_size=50, **fields)
    assert page.matches, "the population has candidates for every filter"
    rows = await rows_of(db, [c.user_id for c in page.matches])
    assert all(holds(rows[c.user_id]) for c in page.matches)


async def test_min_score_and_timezone_window(matching, population) -> None:
    me = population[2]
    everyone = await list_matches(matching, me, page_size=50)
    cut = everyone.matches[10].score
    above = await list_matches(matching, me, page_size=50, min_score=cut)
    assert above.matches and all(c.score >= cut for c in above.matches)
    assert len(above.matches) < len(everyone.matches)
    close = await list_matches(matching, me, page_size=50, min_timezone_overlap_hours=7)
    assert close.matches
    for card in close.matches:
        overlap = next(f for f in card.factors if f.factor == matching_pb2.FACTOR_TIMEZONE_OVERLAP)
        assert float(overlap.detail.split()[0]) >= 7, overlap.detail


async def test_pages_come_from_one_snapshot(matching, population) -> None:
    me = population[3]
    whole = await list_matches(matching, me, page_size=45)
    first = await list_matches(matching, me, page_size=15)
    second = await list_matches(matching, me, page_size=15, page_token=first.next_page_token)
    third = await list_matches(matching, me, page_size=15, page_token=second.next_page_token)
    ids = [c.user_id for page in (first, second, third) for c in page.matches]
    assert ids == [c.user_id for c in whole.matches]
    assert len(set(ids)) == 45
    # Another user cannot read my snapshot.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await list_matches(matching, population[4], page_size=15, page_token=first.next_page_token)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"page_size": 51}, "page_size"),
        ({"min_score": 1.5}, "min_score"),
        ({"min_timezone_overlap_hours": 13}, "min_timezone_overlap_hours"),
        ({"skills": [""]}, "skills[0]"),
        ({"country_code": "germany"}, "country_code"),
        ({"roles": [99]}, "roles[0]"),
        ({"page_token": "not-a-token"}, "page_token"),
    ],
)
async def test_bad_requests_name_the_field(matching, population, fields, field) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await list_matches(matching, population[0], **fields)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in caught.value.details()


async def test_rest_through_envoy(rest, population) -> None:
    me = population[5]
    params = {"pageSize": 5, "roles": "ROLE_BUSINESS_COFOUNDER"}
    response = await rest.get("/v1/matches", params=params, headers=me.user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["matches"]) == 5 and body["nextPageToken"]
    assert {m["role"] for m in body["matches"]} == {"ROLE_BUSINESS_COFOUNDER"}
    assert body["matches"][0]["location"].get("latitude", 0) == 0
    unauthenticated = await rest.get("/v1/matches")
    assert unauthenticated.status_code == 401


async def test_faiss_and_pgvector_return_the_same_top_twenty(matching, faiss_replica, population) -> None:
    for me in population[:12]:
        pgvector = await list_matches(matching, me)
        faiss = await faiss_replica.ListMatches(
            matching_pb2.ListMatchesRequest(), metadata=me.user.metadata, timeout=30
        )
        assert [c.user_id for c in faiss.matches] == [c.user_id for c in pgvector.matches]
        assert [c.score for c in faiss.matches] == [c.score for c in pgvector.matches]


async def test_the_last_ranking_answers_marked_stale_while_vector_search_is_out(matching, population, db) -> None:
    me, newcomer = population[6], population[7]
    fresh = await list_matches(matching, me, page_size=10)
    async with db.acquire() as connection, connection.transaction():
        # Vector search cannot run until this transaction ends: each call gives up after the
        # service's search timeout (MATCHING_SEARCH_TIMEOUT_MS).
        await connection.execute("LOCK TABLE matching.vectors IN ACCESS EXCLUSIVE MODE")
        stale = await list_matches(matching, me, page_size=10)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await list_matches(matching, newcomer, page_size=10, country_code="JP")
    assert stale.stale and not fresh.stale
    assert [c.user_id for c in stale.matches] == [c.user_id for c in fresh.matches]
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # nothing cached for these filters
    more = await list_matches(matching, me, page_size=10, page_token=stale.next_page_token)
    assert more.matches and not {c.user_id for c in more.matches} & {c.user_id for c in stale.matches}
