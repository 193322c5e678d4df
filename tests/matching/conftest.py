"""Fixtures of the matching suites: one generated population per session, created through
the real profile API and embedded by the real model, in the shared mesh."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
import pytest

from deploy.local.ephemeral import Mesh
from openhr.matching.v1 import matching_pb2_grpc
from openhr.profile.v1 import profile_pb2_grpc
from tests.matching.population import generate
from tests.matching.support import Member, create_member, in_read_model
from tests.waiting import eventually

POPULATION = 240


@pytest.fixture(scope="session")
async def db(mesh: Mesh):
    """Superuser connections, for reading rows behind the API's back."""
    pool = await asyncpg.create_pool(mesh.config.database_url, min_size=1, max_size=3)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def matching_channel(mesh: Mesh):
    async with grpc.aio.insecure_channel(mesh.target("matching")) as channel:
        yield channel


@pytest.fixture(scope="session")
def matching(matching_channel) -> matching_pb2_grpc.MatchingServiceStub:
    return matching_pb2_grpc.MatchingServiceStub(matching_channel)


@pytest.fixture(scope="session")
def profiles(profile_channel) -> profile_pb2_grpc.ProfileServiceStub:
    return profile_pb2_grpc.ProfileServiceStub(profile_channel)


@pytest.fixture(scope="session")
def profiles_internal(profile_channel) -> profile_pb2_grpc.ProfileInternalServiceStub:
    return profile_pb2_grpc.ProfileInternalServiceStub(profile_channel)


async def make_members(mesh: Mesh, profiles, profiles_internal, db, generated) -> list[Member]:
    """Creates the profiles (8 at a time) and waits until matching has them all, embedded by the
    enrichment service (ProfileEmbedded)."""
    gate = asyncio.Semaphore(8)

    async def one(g):
        async with gate:
            return await create_member(mesh, profiles, g)

    members = await asyncio.gather(*(one(g) for g in generated))
    await eventually(lambda: in_read_model(db, members), message="the members in matching's read model", within=180)
    return members


@pytest.fixture(scope="session")
async def population(mesh: Mesh, profiles, profiles_internal, db) -> list[Member]:
    """POPULATION varied profiles that tests only read (never like, pass, edit or delete)."""
    return await make_members(mesh, profiles, profiles_internal, db, generate(POPULATION))


@pytest.fixture(scope="session")
async def faiss_replica(mesh: Mesh):
    """A second matching replica on the same database and Redis, serving from FAISS, with
    heartbeats every second and its own narrative template (the shared mesh's replica serves
    from pgvector and asks enrichment for narratives)."""
    env = {"MATCHING_INDEX": "faiss", "OPENHR_STREAM_HEARTBEAT": "1", "MATCHING_NARRATIVES": "template"}
    target = await asyncio.to_thread(mesh.start_replica, "matching", "matching-faiss", env)
    async with grpc.aio.insecure_channel(target) as channel:
        yield matching_pb2_grpc.MatchingServiceStub(channel)
    mesh.stop_process("matching-faiss")
