"""Wiring of the REST body validator: the contracts' descriptor set and the edge's public
services -> rules -> the ExternalProcessor servicer. It needs nothing but its own process,
so its health depends on no other service."""

from __future__ import annotations

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2, external_processor_pb2_grpc
from pydantic import Field

from edge.validation.api import ExternalProcessorApi
from edge.validation.rules import Rules
from services.common import surface
from services.common.server import ServiceSpec
from services.common.settings import REPO_ROOT, ServiceSettings

SERVICE = external_processor_pb2.DESCRIPTOR.services_by_name["ExternalProcessor"].full_name
# Envoy calls the processor without a user token.
PUBLIC_METHODS = frozenset({f"/{SERVICE}/Process"})


class ValidationSettings(ServiceSettings):
    port: int = Field(50069, validation_alias="VALIDATION_PORT")
    metrics_port: int = Field(9469, validation_alias="VALIDATION_METRICS_PORT")
    # The FileDescriptorSet Envoy's transcoder loads (`buf build`, imports included).
    descriptor: str = Field(str(REPO_ROOT / "gen" / "openhr.binpb"), validation_alias="OPENHR_DESCRIPTOR")


def edge_services() -> list[str]:
    """Every public service the edge template can route (the same list as Envoy's)."""
    return [service for services in surface.PUBLIC_SERVICES.values() for service in services]


def build(settings: ValidationSettings) -> ServiceSpec:
    rules = Rules.from_descriptor_set(settings.descriptor, edge_services())

    def register(server: grpc.aio.Server) -> list[str]:
        external_processor_pb2_grpc.add_ExternalProcessorServicer_to_server(ExternalProcessorApi(rules), server)
        return [SERVICE]

    return ServiceSpec(
        name="validation",
        port=settings.port,
        register=register,
        public_methods=PUBLIC_METHODS,
        metrics_port=settings.metrics_port,
        revocations=False,  # no user tokens, no Redis
    )
