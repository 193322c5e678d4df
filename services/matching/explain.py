"""The "why you matched" narrative: written by the enrichment service (an LLM when one is
configured there, its own template otherwise), cached in Redis per pair and profile versions;
this service's template when enrichment is not configured here or does not answer."""

from __future__ import annotations

import grpc
import structlog
from redis.asyncio import Redis

from openhr.enrichment.v1 import enrichment_pb2, enrichment_pb2_grpc
from openhr.matching.v1 import matching_pb2
from services.matching.ranking import Fit
from services.matching.store import Candidate

log = structlog.get_logger("explain")
FACTOR_KEYS = {
    matching_pb2.FACTOR_SKILL_FIT: "skill_fit",
    matching_pb2.FACTOR_TIMEZONE_OVERLAP: "timezone_overlap",
    matching_pb2.FACTOR_EQUITY_ALIGNMENT: "equity_alignment",
    matching_pb2.FACTOR_STAGE_ALIGNMENT: "stage_alignment",
}
CACHE_TTL = 24 * 3600


def template(them: Candidate, fit: Fit) -> str:
    """Plain sentences from the factors, strongest first."""
    name = them.display_name or "They"
    sentences = []
    if fit.complementary_skills:
        sentences.append(f"{name} brings {', '.join(fit.complementary_skills[:3])}.")
    if fit.shared_skills:
        sentences.append(f"You share {', '.join(fit.shared_skills[:3])}.")
    for factor in sorted(fit.factors, key=lambda f: -f.score * f.weight):
        if factor.factor != matching_pb2.FACTOR_SKILL_FIT:
            sentences.append(f"{factor.detail}.")
    sentences.append(f"Overall fit: {round(fit.score * 100)} %.")
    return " ".join(sentences)


def _summary(candidate: Candidate) -> str:
    skills = ", ".join(s.name for s in candidate.person.skills[:8])
    return f"{candidate.display_name}: {candidate.headline}. Skills: {skills}."


class Narrator:
    def __init__(
        self, redis: Redis, enrichment: enrichment_pb2_grpc.EnrichmentInternalServiceStub | None, timeout: float
    ) -> None:
        self._redis, self._enrichment, self._timeout = redis, enrichment, timeout

    async def narrate(self, me: Candidate, them: Candidate, fit: Fit) -> tuple[str, int]:
        """(narrative, NarrativeSource)."""
        if self._enrichment is None:
            return template(them, fit), matching_pb2.NARRATIVE_SOURCE_TEMPLATE
        key = (
            f"matching:narrative:{me.person.user_id}:{me.profile_version}:"
            f"{them.person.user_id}:{them.profile_version}"
        )
        cached = await self._redis.get(key)
        if cached is not None:
            source, _, text = cached.decode().partition("|")
            return text, int(source)
        request = enrichment_pb2.GenerateMatchNarrativeRequest(
            viewer_summary=_summary(me),
            candidate_summary=_summary(them),
            shared_skills=fit.shared_skills,
            complementary_skills=fit.complementary_skills,
            factor_scores={FACTOR_KEYS[f.factor]: f.score for f in fit.factors},
            factor_details={FACTOR_KEYS[f.factor]: f.detail for f in fit.factors},
            candidate_name=them.display_name,
        )
        try:
            response = await self._enrichment.GenerateMatchNarrative(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            log.info("narrative from the template", reason=exc.code().name)
            return template(them, fit), matching_pb2.NARRATIVE_SOURCE_TEMPLATE
        llm = response.text_source == enrichment_pb2.TEXT_SOURCE_LLM
        source = matching_pb2.NARRATIVE_SOURCE_LLM if llm else matching_pb2.NARRATIVE_SOURCE_TEMPLATE
        await self._redis.set(key, f"{source}|{response.narrative}", ex=CACHE_TTL)
        return response.narrative, source
