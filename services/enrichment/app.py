"""Wiring of the enrichment service. So far it serves the skills taxonomy and generated texts, which need
no database: its health depends on nothing but itself (the LLM, its Redis cache and the profile service
are called per request, and a text falls back to its template without them)."""

from __future__ import annotations

import grpc
from pydantic import Field

from openhr.enrichment.v1 import enrichment_pb2, enrichment_pb2_grpc
from services.common.cache import connect_redis
from services.common.clients import channel
from services.common.server import ServiceSpec
from services.common.settings import ServiceSettings
from services.enrichment.api import EnrichmentApi, EnrichmentInternalApi, SkillsApi
from services.enrichment.llm import Llm, LlmSettings
from services.enrichment.narratives import TextWriter
from services.enrichment.profiles import ProfileReader
from services.enrichment.taxonomy import default_taxonomy


class EnrichmentSettings(ServiceSettings, LlmSettings):
    port: int = Field(50064, validation_alias="ENRICHMENT_PORT")
    metrics_port: int = Field(9464, validation_alias="ENRICHMENT_METRICS_PORT")
    profile_addr: str = Field("127.0.0.1:50061", validation_alias="PROFILE_ADDR")


def build(settings: EnrichmentSettings) -> ServiceSpec:
    taxonomy = default_taxonomy()
    redis = connect_redis(settings.redis_url)
    llm = Llm(settings, redis)
    writer = TextWriter(llm)
    # Only reads go through this channel, so UNAVAILABLE may be retried.
    profiles = channel(settings.profile_addr, idempotent_services=["openhr.profile.v1.ProfileService"])

    def register(server: grpc.aio.Server) -> list[str]:
        enrichment_pb2_grpc.add_SkillsServiceServicer_to_server(SkillsApi(taxonomy), server)
        enrichment_pb2_grpc.add_EnrichmentInternalServiceServicer_to_server(
            EnrichmentInternalApi(taxonomy, writer), server
        )
        enrichment_pb2_grpc.add_EnrichmentServiceServicer_to_server(
            EnrichmentApi(writer, ProfileReader(profiles)), server
        )
        services = enrichment_pb2.DESCRIPTOR.services_by_name
        return [
            services["SkillsService"].full_name,
            services["EnrichmentInternalService"].full_name,
            services["EnrichmentService"].full_name,
        ]

    async def close() -> None:
        await llm.close()
        await profiles.close()
        await redis.aclose()

    return ServiceSpec(
        name="enrichment",
        port=settings.port,
        register=register,
        cleanup=[close],
        metrics_port=settings.metrics_port,
    )
