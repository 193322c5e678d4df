"""Fixtures of the enrichment suites (the session mesh comes from tests/conftest.py)."""

from __future__ import annotations

import grpc
import pytest

from deploy.local.ephemeral import Mesh
from openhr.enrichment.v1 import enrichment_pb2_grpc


@pytest.fixture(scope="module")
async def enrichment_channel(mesh: Mesh):
    async with grpc.aio.insecure_channel(mesh.target("enrichment")) as channel:
        yield channel


@pytest.fixture(scope="module")
def internal(enrichment_channel) -> enrichment_pb2_grpc.EnrichmentInternalServiceStub:
    return enrichment_pb2_grpc.EnrichmentInternalServiceStub(enrichment_channel)
