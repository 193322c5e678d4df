"""Skill normalization through the enrichment service's taxonomy (a service-to-service call)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from openhr.enrichment.v1 import enrichment_pb2, enrichment_pb2_grpc
from services.common import errors
from services.common.skills import category_name


@dataclass(frozen=True)
class NormalizedSkill:
    name: str
    taxonomy_id: str
    category: str


def _normalized(result: enrichment_pb2.NormalizeSkillResponse) -> NormalizedSkill:
    return NormalizedSkill(name=result.name, taxonomy_id=result.taxonomy_id, category=category_name(result.category))


class SkillNormalizer:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._skills = enrichment_pb2_grpc.SkillsServiceStub(channel)
        self._internal = enrichment_pb2_grpc.EnrichmentInternalServiceStub(channel)

    async def normalize(self, name: str) -> NormalizedSkill:
        try:
            result = await self._skills.NormalizeSkill(enrichment_pb2.NormalizeSkillRequest(name=name))
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc) from None
        return _normalized(result)

    async def normalize_many(self, names: list[str]) -> list[NormalizedSkill]:
        try:
            response = await self._internal.BatchNormalizeSkills(
                enrichment_pb2.BatchNormalizeSkillsRequest(names=names)
            )
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc) from None
        return [_normalized(r) for r in response.results]


def _translate(exc: grpc.aio.AioRpcError) -> errors.DomainError:
    if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
        return errors.invalid_field("name", exc.details() or "is not a valid skill name")
    return errors.unavailable("skill normalization is unavailable, retry later")
