"""The matching service's gRPC servicers: thin translation between protos and the domain."""

from __future__ import annotations

import re
import uuid

from openhr.matching.v1 import matching_pb2, matching_pb2_grpc
from openhr.profile.v1 import profile_pb2
from services.common import errors
from services.common.auth import current_principal
from services.common.db import Database
from services.common.errors import FieldViolation
from services.common.skills import MAX_SKILL_NAME
from services.matching import cards, feed, snapshots, store
from services.matching.candidates import Ranked, Ranker, SearchUnavailable
from services.matching.decisions import LIKE, PASS, Decisions
from services.matching.explain import Narrator
from services.matching.feed import MatchFeed
from services.matching.readmodel import ReadModel
from services.matching.snapshots import Snapshots

SERVICE = "matching"
DEFAULT_PAGE, MAX_PAGE = 20, 50
DEFAULT_FEED, MAX_FEED = 10, 50
DEFAULT_MATCHES_PAGE, MAX_MATCHES_PAGE = 50, 100
MAX_SKILL_FILTERS = 20
MAX_SCORE_BATCH = 500
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def _caller() -> str:
    return current_principal().user_id


def _uuid(value: str, name: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise errors.invalid_field(name, "must be a UUID" if value else "is required") from None


def _enum_violations(name: str, enum, values) -> list[FieldViolation]:
    return [
        FieldViolation(f"{name}[{i}]", f"unknown {enum.DESCRIPTOR.name} value {v}")
        for i, v in enumerate(values)
        if v == 0 or v not in enum.DESCRIPTOR.values_by_number
    ]


def validate_list_request(request: matching_pb2.ListMatchesRequest) -> int:
    """The page size; INVALID_ARGUMENT naming every bad field."""
    violations = []
    if not 0 <= request.page_size <= MAX_PAGE:
        violations.append(FieldViolation("page_size", f"must be 1-{MAX_PAGE}"))
    if not 0 <= request.min_score <= 1:
        violations.append(FieldViolation("min_score", "must be 0-1"))
    if not 0 <= request.min_timezone_overlap_hours <= 12:
        violations.append(FieldViolation("min_timezone_overlap_hours", "must be 0-12"))
    if len(request.skills) > MAX_SKILL_FILTERS:
        violations.append(FieldViolation("skills", f"at most {MAX_SKILL_FILTERS}"))
    violations += [
        FieldViolation(f"skills[{i}]", f"must be 1-{MAX_SKILL_NAME} characters")
        for i, s in enumerate(request.skills)
        if not s.strip() or len(s) > MAX_SKILL_NAME
    ]
    if request.country_code and not _COUNTRY.match(request.country_code):
        violations.append(FieldViolation("country_code", "must be an ISO 3166-1 alpha-2 code such as DE"))
    violations += _enum_violations("roles", profile_pb2.Role, request.roles)
    violations += _enum_violations("stages", profile_pb2.StartupStage, request.stages)
    violations += _enum_violations("commitments", profile_pb2.Commitment, request.commitments)
    if violations:
        raise errors.invalid_argument(*violations)
    return request.page_size or DEFAULT_PAGE


class MatchingApi(matching_pb2_grpc.MatchingServiceServicer):
    def __init__(
        self,
        db: Database,
        ranker: Ranker,
        decisions: Decisions,
        snapshots_: Snapshots,
        narrator: Narrator,
        match_feed: MatchFeed,
        snapshot_size: int,
    ) -> None:
        self._db, self._ranker, self._decisions = db, ranker, decisions
        self._snapshots, self._narrator, self._feed = snapshots_, narrator, match_feed
        self._snapshot_size = snapshot_size

    async def ListMatches(self, request, context):
        size = validate_list_request(request)
        me = _caller()
        stale = False
        if request.page_token:
            snapshot_id, offset = snapshots.parse_page_token(request.page_token)
            ranked_cards = await self._snapshots.load(me, snapshot_id)
            if ranked_cards is None:
                raise errors.invalid_field("page_token", "has expired: list again without it")
        else:
            offset, key = 0, snapshots.filters_key(request)
            try:
                ranked = await self._ranker.rank(me, request)
            except SearchUnavailable:
                last = await self._snapshots.last(me, key)
                if last is None:
                    raise errors.unavailable("candidates cannot be ranked right now, retry later") from None
                (snapshot_id, ranked_cards), stale = last, True
            else:
                ranked_cards = [cards.card(r) for r in ranked[: self._snapshot_size]]
                snapshot_id = await self._snapshots.save(me, key, ranked_cards)
        page = ranked_cards[offset : offset + size]
        more = offset + size < len(ranked_cards)
        return matching_pb2.ListMatchesResponse(
            matches=page,
            next_page_token=snapshots.page_token(snapshot_id, offset + size) if more else "",
            stale=stale,
        )

    async def LikeProfile(self, request, context):
        profile_id = _uuid(request.profile_id, "profile_id")
        outcome = await self._decisions.decide(_caller(), profile_id, LIKE)
        if outcome.match is None:
            return matching_pb2.LikeProfileResponse(mutual=False)
        return matching_pb2.LikeProfileResponse(mutual=True, match=cards.match(outcome.match))

    async def PassProfile(self, request, context):
        await self._decisions.decide(_caller(), _uuid(request.profile_id, "profile_id"), PASS)
        return matching_pb2.PassProfileResponse()

    async def GetMatchExplanation(self, request, context):
        profile_id = _uuid(request.profile_id, "profile_id")
        me = _caller()
        async with self._db.transaction(me) as tx:
            other = await store.user_of_profile(tx, profile_id)
        if other is None or other == me:
            raise errors.not_found("profile")
        mine, ranked = await self._ranker.pair(me, other)
        narrative, source = await self._narrator.narrate(mine, ranked.candidate, ranked.fit)
        fit = ranked.fit
        return matching_pb2.GetMatchExplanationResponse(
            explanation=matching_pb2.Explanation(
                profile_id=profile_id,
                score=round(fit.score, 4),
                factors=cards.factors(fit),
                shared_skills=fit.shared_skills,
                complementary_skills=fit.complementary_skills,
                narrative=narrative,
                narrative_source=source,
            )
        )

    async def StreamMatchFeed(self, request, context):
        if not 0 <= request.initial_size <= MAX_FEED:
            raise errors.invalid_field("initial_size", f"must be 1-{MAX_FEED}")
        resume_after = feed.parse_cursor(request.resume_cursor)
        async for response in self._feed.stream(_caller(), request.initial_size or DEFAULT_FEED, resume_after):
            yield response

    async def ListMyMatches(self, request, context):
        if not 0 <= request.page_size <= MAX_MATCHES_PAGE:
            raise errors.invalid_field("page_size", f"must be 1-{MAX_MATCHES_PAGE}")
        size = request.page_size or DEFAULT_MATCHES_PAGE
        before = None
        if request.page_token:
            try:
                before = int(request.page_token)
            except ValueError:
                raise errors.invalid_field("page_token", "is not a token this service issued") from None
        async with self._db.transaction(_caller()) as tx:
            rows = await store.list_matches(tx, _caller(), before, size + 1)
        return matching_pb2.ListMyMatchesResponse(
            matches=[cards.match(row) for row in rows[:size]],
            next_page_token=str(rows[size - 1].seq) if len(rows) > size else "",
        )


class MatchingInternalApi(matching_pb2_grpc.MatchingInternalServiceServicer):
    def __init__(self, db: Database, ranker: Ranker, read_model: ReadModel, on_rebuilt) -> None:
        self._db, self._ranker, self._read_model, self._on_rebuilt = db, ranker, read_model, on_rebuilt

    async def ScoreCandidates(self, request, context):
        user_id = _uuid(request.user_id, "user_id")
        if len(request.candidate_user_ids) > MAX_SCORE_BATCH:
            raise errors.invalid_field("candidate_user_ids", f"at most {MAX_SCORE_BATCH}")
        others = [_uuid(u, f"candidate_user_ids[{i}]") for i, u in enumerate(request.candidate_user_ids)]
        async with self._db.transaction(user_id) as tx:
            me, people = await self._ranker.people(tx, user_id, others)
        return matching_pb2.ScoreCandidatesResponse(
            cards=[
                cards.card(Ranked(self._ranker.score(me.candidate, people[o]), people[o]))
                for o in others
                if o in people and o != user_id and people[o].discoverable
            ]
        )

    async def RebuildReadModel(self, request, context):
        profiles, embeddings = await self._read_model.rebuild()
        await self._on_rebuilt()
        return matching_pb2.RebuildReadModelResponse(profiles=profiles, embeddings=embeddings)
