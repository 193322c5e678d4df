"""Read-model rows and rankings as the contract's messages. A card never carries coordinates."""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from openhr.common.v1 import common_pb2
from openhr.matching.v1 import matching_pb2
from services.matching.candidates import Ranked
from services.matching.ranking import TOP_SKILLS, Fit
from services.matching.store import MatchRow


def factors(fit: Fit) -> list[matching_pb2.FactorScore]:
    return [
        matching_pb2.FactorScore(factor=f.factor, score=round(f.score, 4), weight=round(f.weight, 4), detail=f.detail)
        for f in fit.factors
    ]


def card(ranked: Ranked, state: int = matching_pb2.MATCH_STATE_CANDIDATE) -> matching_pb2.MatchCard:
    them, fit = ranked.candidate, ranked.fit
    return matching_pb2.MatchCard(
        profile_id=them.profile_id,
        user_id=them.person.user_id,
        display_name=them.display_name,
        headline=them.headline,
        role=them.person.role,
        avatar_url=them.avatar_url,
        location=common_pb2.Location(city=them.city, country_code=them.country_code),
        timezone=them.person.timezone,
        top_skills=[s.name for s in them.person.skills[:TOP_SKILLS]],
        score=round(fit.score, 4),
        factors=factors(fit),
        summary=fit.summary(),
        state=state,
    )


def match(row: MatchRow) -> matching_pb2.Match:
    created = timestamp_pb2.Timestamp()
    created.FromDatetime(row.created_at)
    return matching_pb2.Match(
        match_id=row.match_id,
        user_ids=list(row.user_ids),
        score=round(row.score, 4),
        conversation_id=row.conversation_id,
        create_time=created,
    )
