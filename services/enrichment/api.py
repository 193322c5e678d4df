"""The enrichment service's gRPC servicers (so far: the skills taxonomy)."""

from __future__ import annotations

from openhr.enrichment.v1 import enrichment_pb2, enrichment_pb2_grpc
from services.common import errors
from services.common.errors import FieldViolation
from services.common.skills import MAX_SKILL_NAME, category_enum, category_id
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
    """Internal RPCs; EmbedTexts and GenerateMatchNarrative arrive with the embeddings issue
    and answer UNIMPLEMENTED (the generated base class) until then."""

    def __init__(self, taxonomy: SkillTaxonomy) -> None:
        self._taxonomy = taxonomy

    async def BatchNormalizeSkills(self, request, context):
        if len(request.names) > MAX_BATCH:
            raise errors.invalid_field("names", f"at most {MAX_BATCH}")
        for i, name in enumerate(request.names):
            _check_name(name, f"names[{i}]")
        return enrichment_pb2.BatchNormalizeSkillsResponse(
            results=[_normalized(self._taxonomy.normalize(name)) for name in request.names]
        )
