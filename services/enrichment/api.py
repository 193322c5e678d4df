"""The enrichment service's gRPC servicers: the skills taxonomy, embeddings, user data."""

from __future__ import annotations

from openhr.enrichment.v1 import enrichment_pb2, enrichment_pb2_grpc
from services.common import errors
from services.common.db import Tx
from services.common.errors import FieldViolation
from services.common.skills import MAX_SKILL_NAME, category_enum, category_id
from services.common.user_data import UserDataServicer
from services.enrichment import store
from services.enrichment.embedder import Embedder
from services.enrichment.skill_matching import SkillNormalizer
from services.enrichment.taxonomy import Normalization, SkillTaxonomy

MAX_QUERY = 100
MAX_LIMIT = 50
DEFAULT_LIMIT = 10
MAX_BATCH = 200
MAX_EMBED_TEXTS = 64
MAX_EMBED_CHARS = 8000
SERVICE = "enrichment"


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


def _check_texts(texts) -> None:
    if not texts:
        raise errors.invalid_field("texts", "is required: 1-64 texts")
    if len(texts) > MAX_EMBED_TEXTS:
        raise errors.invalid_field("texts", f"at most {MAX_EMBED_TEXTS} texts")
    violations = []
    for i, text in enumerate(texts):
        if not text.strip():
            violations.append(FieldViolation(f"texts[{i}]", "is empty"))
        elif len(text) > MAX_EMBED_CHARS:
            violations.append(FieldViolation(f"texts[{i}]", f"must be at most {MAX_EMBED_CHARS} characters"))
    if violations:
        raise errors.invalid_argument(*violations)


class SkillsApi(enrichment_pb2_grpc.SkillsServiceServicer):
    def __init__(self, taxonomy: SkillTaxonomy, normalizer: SkillNormalizer) -> None:
        self._taxonomy, self._normalizer = taxonomy, normalizer

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
        (result,) = await self._normalizer.normalize([request.name])
        return _normalized(result)


class EnrichmentInternalApi(enrichment_pb2_grpc.EnrichmentInternalServiceServicer):
    """Internal RPCs; GenerateMatchNarrative answers UNIMPLEMENTED (the generated base class)
    until the LLM text lands."""

    def __init__(self, normalizer: SkillNormalizer, embedder: Embedder) -> None:
        self._normalizer, self._embedder = normalizer, embedder

    async def EmbedTexts(self, request, context):
        _check_texts(request.texts)
        if request.model_id and request.model_id != self._embedder.model_id:
            raise errors.invalid_field(
                "model_id", f"unknown model {request.model_id!r}: this service embeds with {self._embedder.model_id}"
            )
        vectors = await self._embedder.embed(list(request.texts))
        return enrichment_pb2.EmbedTextsResponse(
            model_id=self._embedder.model_id,
            dimensions=self._embedder.dimensions,
            embeddings=[enrichment_pb2.Embedding(values=vector) for vector in vectors.tolist()],
        )

    async def BatchNormalizeSkills(self, request, context):
        if len(request.names) > MAX_BATCH:
            raise errors.invalid_field("names", f"at most {MAX_BATCH}")
        for i, name in enumerate(request.names):
            _check_name(name, f"names[{i}]")
        results = await self._normalizer.normalize(list(request.names))
        return enrichment_pb2.BatchNormalizeSkillsResponse(results=[_normalized(result) for result in results])


class UserDataApi(UserDataServicer):
    """Export and erasure of what the enrichment service holds about the caller."""

    service = SERVICE

    async def export(self, tx: Tx, user_id: str) -> dict:
        return await store.export_user(tx, user_id)

    async def delete(self, tx: Tx, user_id: str) -> dict[str, int]:
        return await store.delete_user(tx, user_id)
