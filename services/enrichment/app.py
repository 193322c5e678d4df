"""Wiring of the enrichment service: settings, database, Redis, servicers, background work."""

from __future__ import annotations

import grpc
from pydantic import Field

from openhr.enrichment.v1 import enrichment_pb2, enrichment_pb2_grpc
from services.common.cache import connect_redis, ping
from services.common.db import Database
from services.common.outbox import OutboxRelay
from services.common.server import ServiceSpec, service_name
from services.common.settings import ServiceSettings
from services.enrichment import store
from services.enrichment.api import EnrichmentInternalApi, SkillsApi
from services.enrichment.taxonomy import default_taxonomy


class EnrichmentSettings(ServiceSettings):
    port: int = Field(50064, validation_alias="ENRICHMENT_PORT")
    metrics_port: int = Field(9464, validation_alias="ENRICHMENT_METRICS_PORT")


def build(settings: EnrichmentSettings) -> ServiceSpec:
    db = Database.for_service(settings, store.SCHEMA)
    redis = connect_redis(settings.redis_url)
    relay = OutboxRelay(db, redis, store.SCHEMA)
    taxonomy = default_taxonomy()

    def register(server: grpc.aio.Server) -> list[str]:
        enrichment_pb2_grpc.add_SkillsServiceServicer_to_server(SkillsApi(taxonomy), server)
        enrichment_pb2_grpc.add_EnrichmentInternalServiceServicer_to_server(EnrichmentInternalApi(taxonomy), server)
        return [
            service_name(enrichment_pb2, "SkillsService"),
            service_name(enrichment_pb2, "EnrichmentInternalService"),
        ]

    async def close() -> None:
        await redis.aclose()
        await db.close()

    return ServiceSpec(
        name="enrichment",
        port=settings.port,
        register=register,
        checks={"postgres": db.ping, "redis": lambda: ping(redis)},
        background=[relay.run],
        cleanup=[close],
        metrics_port=settings.metrics_port,
    )
