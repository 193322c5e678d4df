"""Fixtures of the identity suites (the session mesh comes from tests/conftest.py)."""

from __future__ import annotations

import grpc
import pytest

from deploy.local.ephemeral import Mesh
from openhr.identity.v1 import identity_pb2_grpc


@pytest.fixture(scope="module")
async def identity(mesh: Mesh):
    """gRPC straight to the identity service."""
    async with grpc.aio.insecure_channel(mesh.target("identity")) as channel:
        yield identity_pb2_grpc.IdentityServiceStub(channel)
