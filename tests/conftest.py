"""Session fixtures: one real mesh for the whole run (see deploy/local/ephemeral.py)."""

from __future__ import annotations

import os

import asyncpg
import grpc
import httpx
import pytest

from deploy.local.ephemeral import Mesh, start_mesh
from services.common.settings import REPO_ROOT
from tests.support.llm_server import LlmServer
from tests.support.oauth_provider import OAuthProvider


@pytest.fixture(scope="session")
def oauth_provider() -> OAuthProvider:
    """The GitHub and Google stand-in (tests/support/oauth_provider.py), started before the mesh."""
    provider = OAuthProvider().start()
    yield provider
    provider.stop()


@pytest.fixture(scope="session")
def llm_server() -> LlmServer:
    """The OpenAI-compatible LLM stand-in (tests/support/llm_server.py) the mesh's enrichment uses."""
    server = LlmServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mesh(oauth_provider: OAuthProvider, llm_server: LlmServer) -> Mesh:
    # Per process, so that two test runs on one machine never share (or delete) a mesh.
    env = {**oauth_provider.env(), **llm_server.env(OPENHR_LLM_TIMEOUT="5")}
    started = start_mesh(REPO_ROOT / ".data" / f"test-{os.getpid()}", extra_env=env)
    yield started
    started.stop(remove_data=True)


@pytest.fixture(scope="session")
def rest(mesh: Mesh) -> httpx.AsyncClient:
    """REST through Envoy (no token: tests pass headers)."""
    return httpx.AsyncClient(base_url=mesh.edge_url, timeout=10)


@pytest.fixture(scope="session")
async def profile_channel(mesh: Mesh):
    """gRPC straight to the profile service."""
    async with grpc.aio.insecure_channel(mesh.target("profile")) as channel:
        yield channel


@pytest.fixture(scope="session")
async def edge_channel(mesh: Mesh):
    """gRPC through Envoy."""
    async with grpc.aio.insecure_channel(mesh.edge_target) as channel:
        yield channel


@pytest.fixture(scope="session")
async def db(mesh: Mesh) -> asyncpg.Pool:
    """Superuser connections to the mesh's database, for reading (and ageing) rows behind the
    API's back and for opening transactions as a service's app role."""
    pool = await asyncpg.create_pool(mesh.config.database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()
