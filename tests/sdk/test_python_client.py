"""Python consumers: the generated typed client through Envoy, and reflection for grpcurl-style tools."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from deploy.local.ephemeral import Mesh
from openhr_client.openhr.enrichment.v1 import SearchSkillsRequest, SkillsServiceStub
from openhr_client.openhr.profile.v1 import (
    CreateProfileRequest,
    GetMyProfileRequest,
    Profile,
    ProfileServiceStub,
    Role,
)
from sdk import authenticated_channel


def _sdk_round_trip(target: str, token: str) -> tuple[Profile, Profile, list[str]]:
    with authenticated_channel(target, token) as channel:
        profiles = ProfileServiceStub(channel)
        created = profiles.create_profile(
            CreateProfileRequest(profile=Profile(display_name="Sid", role=Role.EARLY_ENGINEER, timezone="Asia/Tokyo"))
        ).profile
        mine = profiles.get_my_profile(GetMyProfileRequest()).profile
        skills = SkillsServiceStub(channel).search_skills(SearchSkillsRequest(query="typescr", limit=3)).skills
    return created, mine, [s.name for s in skills]


async def test_typed_client_through_the_edge(mesh: Mesh) -> None:
    created, mine, skills = await asyncio.to_thread(_sdk_round_trip, mesh.edge_target, mesh.token())
    assert mine.profile_id == created.profile_id
    assert (mine.display_name, mine.role, mine.timezone) == ("Sid", Role.EARLY_ENGINEER, "Asia/Tokyo")
    assert skills[0] == "TypeScript"


def _search_without_token(target: str) -> None:
    with grpc.insecure_channel(target) as channel:
        SkillsServiceStub(channel).search_skills(SearchSkillsRequest(query="go"))


async def test_typed_client_without_token_is_unauthenticated(mesh: Mesh) -> None:
    with pytest.raises(grpc.RpcError) as failure:
        await asyncio.to_thread(_search_without_token, mesh.edge_target)
    assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED


def _reflected_services(target: str) -> tuple[list[str], list[str]]:
    with grpc.insecure_channel(target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = database.get_services()
        pool = descriptor_pool.DescriptorPool(database)
        methods = [m.name for m in pool.FindServiceByName("openhr.profile.v1.ProfileService").methods]
    return list(services), methods


async def test_services_answer_reflection_like_grpcurl_expects(mesh: Mesh) -> None:
    services, methods = await asyncio.to_thread(_reflected_services, mesh.target("profile"))
    assert {"openhr.profile.v1.ProfileService", "grpc.health.v1.Health"} <= set(services)
    assert {"GetProfile", "UpdateProfile", "WatchMyProfile"} <= set(methods)
