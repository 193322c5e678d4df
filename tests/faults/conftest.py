"""A mesh of its own for tests that stop Postgres, Redis or a service, so that the shared
mesh of the other suites never sees the outage."""

from __future__ import annotations

import os

import grpc
import pytest

from deploy.local.ephemeral import Mesh, start_mesh
from services.common.settings import REPO_ROOT


@pytest.fixture(scope="module")
def faulty_mesh() -> Mesh:
    started = start_mesh(REPO_ROOT / ".data" / f"test-faults-{os.getpid()}")
    yield started
    started.stop(remove_data=True)


@pytest.fixture(scope="module")
async def profile_direct(faulty_mesh: Mesh):
    async with grpc.aio.insecure_channel(faulty_mesh.target("profile")) as channel:
        yield channel
