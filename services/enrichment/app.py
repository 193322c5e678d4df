"""Wiring of the enrichment service. So far it serves the skills taxonomy, which needs no
database: its health depends on nothing but itself."""

from __future__ import annotations

import grpc
from pydantic import Field

from openhr.enrichment.v1 import enrichment_pb2, enrichment_pb2_grpc
from services.common.server import ServiceSpec
from services.common.settings import ServiceSettings
from services.enrichment.api import EnrichmentInternalApi, SkillsApi
from services.enrichment.taxonomy import default_taxonomy


class EnrichmentSettings(ServiceSettings):
    port: int = Field(50064, validation_alias="ENRICHMENT_PORT")
    metrics_port: int = Field(9464, validation_alias="ENRICHMENT_METRICS_PORT")


def build(settings: EnrichmentSettings) -> ServiceSpec:
    taxonomy = default_taxonomy()

    def register(server: grpc.aio.Server) -> list[str]:
        enrichment_pb2_grpc.add_SkillsServiceServicer_to_server(SkillsApi(taxonomy), server)
        enrichment_pb2_grpc.add_EnrichmentInternalServiceServicer_to_server(EnrichmentInternalApi(taxonomy), server)
        services = enrichment_pb2.DESCRIPTOR.services_by_name
        return [services["SkillsService"].full_name, services["EnrichmentInternalService"].full_name]

    return ServiceSpec(name="enrichment", port=settings.port, register=register, metrics_port=settings.metrics_port)
