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
