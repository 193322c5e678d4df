"""Fixtures of the enrichment suites (the session mesh comes from tests/conftest.py)."""

from __future__ import annotations

import asyncpg
import grpc
import pytest

from deploy.local.ephemeral import Mesh
from openhr.enrichment.v1 import enrichment_pb2_grpc


@pytest.fixture(scope="module")
async def db(mesh: Mesh):
    """Superuser connections, for reading rows behind the API's back."""
    pool = await asyncpg.create_pool(mesh.config.database_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def enrichment_channel(mesh: Mesh):
    async with grpc.aio.insecure_channel(mesh.target("enrichment")) as channel:
        yield channel


@pytest.fixture(scope="module")
def internal(enrichment_channel) -> enrichment_pb2_grpc.EnrichmentInternalServiceStub:
    return enrichment_pb2_grpc.EnrichmentInternalServiceStub(enrichment_channel)
