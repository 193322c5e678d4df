"""The enrichment service's gRPC servicers (so far: the skills taxonomy and generated texts)."""

from __future__ import annotations

from openhr.enrichment.v1 import enrichment_pb2, enrichment_pb2_grpc
from services.common import errors
from services.common.errors import FieldViolation
from services.common.skills import MAX_SKILL_NAME, category_enum, category_id
from services.enrichment.narratives import MatchFacts, Source, Text, TextWriter
from services.enrichment.profiles import ProfileReader
from services.enrichment.taxonomy import Normalization, SkillTaxonomy

MAX_QUERY = 100
MAX_LIMIT = 50
DEFAULT_LIMIT = 10
MAX_BATCH = 200


def _check_name(name: str, field: str) -> None:
    if not name.strip():
        raise errors.invalid_field(field, "is required")
    if len(name) > MAX_SKILL_NAME:
        raise errors.invalid_field(field, f"must be at most {MAX_SKILL_NAME} characters")


def _normalized(result: Normalization) -> enrichment_pb2.NormalizeSkillResponse:
    if result.skill is None:
        return enrichment_pb2.NormalizeSkillResponse(name=result.name, custom=True)
    return enrichment_pb2.NormalizeSkillResponse(
        name=result.skill.name,
        taxonomy_id=result.skill.id,
        category=category_enum(result.skill.category),
        confidence=result.confidence,
    )


class SkillsApi(enrichment_pb2_grpc.SkillsServiceServicer):
    def __init__(self, taxonomy: SkillTaxonomy) -> None:
        self._taxonomy = taxonomy

    async def SearchSkills(self, request, context):
        violations = []
        if not request.query.strip():
            violations.append(FieldViolation("query", "is required"))
        elif len(request.query) > MAX_QUERY:
            violations.append(FieldViolation("query", f"must be at most {MAX_QUERY} characters"))
        if not 0 <= request.limit <= MAX_LIMIT:
            violations.append(FieldViolation("limit", f"must be 1-{MAX_LIMIT}"))
        if request.category not in enrichment_pb2.SkillCategory.DESCRIPTOR.values_by_number:
            violations.append(FieldViolation("category", f"unknown SkillCategory value {request.category}"))
        if violations:
            raise errors.invalid_argument(*violations)
        category = category_id(request.category) or None  # None: every category
        hits = self._taxonomy.search(request.query, request.limit or DEFAULT_LIMIT, category)
        return enrichment_pb2.SearchSkillsResponse(
            skills=[
                enrichment_pb2.SkillSuggestion(
                    taxonomy_id=hit.skill.id,
                    name=hit.skill.name,
                    category=category_enum(hit.skill.category),
                    matched=hit.matched,
                    score=hit.score,
                )
                for hit in hits
            ]
        )

    async def NormalizeSkill(self, request, context):
        _check_name(request.name, "name")
        return _normalized(self._taxonomy.normalize(request.name))


class EnrichmentInternalApi(enrichment_pb2_grpc.EnrichmentInternalServiceServicer):
    """Internal RPCs; EmbedTexts arrives with the embeddings issue and answers UNIMPLEMENTED (the
    generated base class) until then."""

    def __init__(self, taxonomy: SkillTaxonomy, writer: TextWriter) -> None:
        self._taxonomy = taxonomy
        self._writer = writer

    async def GenerateMatchNarrative(self, request, context):
        text = await self._writer.match_narrative(_match_facts(request))
        return enrichment_pb2.GenerateMatchNarrativeResponse(
            narrative=text.text, source=text.source.value, text_source=_TEXT_SOURCES[text.source]
        )

    async def BatchNormalizeSkills(self, request, context):
        if len(request.names) > MAX_BATCH:
            raise errors.invalid_field("names", f"at most {MAX_BATCH}")
        for i, name in enumerate(request.names):
            _check_name(name, f"names[{i}]")
        return enrichment_pb2.BatchNormalizeSkillsResponse(
            results=[_normalized(self._taxonomy.normalize(name)) for name in request.names]
        )


class EnrichmentApi(enrichment_pb2_grpc.EnrichmentServiceServicer):
    """Public enrichment RPCs; the jobs (CreateEnrichmentJob, …) answer UNIMPLEMENTED (the generated base
    class) until they land."""

    def __init__(self, writer: TextWriter, profiles: ProfileReader) -> None:
        self._writer, self._profiles = writer, profiles

    async def DraftText(self, request, context):
        if request.purpose == enrichment_pb2.TEXT_PURPOSE_PROFILE_SUMMARY:
            if request.profile_id:
                raise errors.invalid_field("profile_id", "is only for TEXT_PURPOSE_FIRST_MESSAGE")
            text = await self._writer.profile_summary(await self._profiles.mine())
        elif request.purpose == enrichment_pb2.TEXT_PURPOSE_FIRST_MESSAGE:
            if not request.profile_id:
                raise errors.invalid_field("profile_id", "is required for TEXT_PURPOSE_FIRST_MESSAGE")
            sender = await self._profiles.mine()
            recipient = await self._profiles.visible(request.profile_id)
            if recipient.user_id == sender.user_id:
                raise errors.invalid_field("profile_id", "is your own profile")
            text = await self._writer.first_message(sender, recipient)
        else:
            raise errors.invalid_field("purpose", "must be TEXT_PURPOSE_PROFILE_SUMMARY or TEXT_PURPOSE_FIRST_MESSAGE")
        return _draft(request.purpose, text)


_TEXT_SOURCES = {Source.LLM: enrichment_pb2.TEXT_SOURCE_LLM, Source.TEMPLATE: enrichment_pb2.TEXT_SOURCE_TEMPLATE}


def _draft(purpose: int, text: Text) -> enrichment_pb2.DraftTextResponse:
    return enrichment_pb2.DraftTextResponse(purpose=purpose, text=text.text, source=_TEXT_SOURCES[text.source])


def _match_facts(request: enrichment_pb2.GenerateMatchNarrativeRequest) -> MatchFacts:
    """The request's facts, or INVALID_ARGUMENT naming every field out of its limits."""
    facts = MatchFacts(
        viewer_summary=request.viewer_summary,
        candidate_summary=request.candidate_summary,
        shared_skills=tuple(request.shared_skills),
        complementary_skills=tuple(request.complementary_skills),
        factor_scores=dict(request.factor_scores),
        factor_details=dict(request.factor_details),
        candidate_name=request.candidate_name,
    )
    violations = facts.violations()
    if violations:
        raise errors.invalid_argument(*violations)
    return facts
