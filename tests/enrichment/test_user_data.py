"""The user's vectors and embedded texts: exported and erased through UserDataService, and
part of identity's export and deletion of the whole account."""

from __future__ import annotations

import uuid

import grpc
import pytest

from deploy.local.ephemeral import Mesh
from openhr.common.v1 import user_data_pb2, user_data_pb2_grpc
from tests.enrichment.support import service_metadata, wait_for_embedded
from tests.identity.support import sign_up
from tests.users import new_user

PROFILE = {"displayName": "Eve", "headline": "Growth marketer", "lookingFor": "A technical co-founder"}


async def _embedded_profile(mesh: Mesh, rest):
    user = new_user(mesh, "vectors")
    created = (await rest.post("/v1/profiles", json=PROFILE, headers=user.headers)).json()["profile"]
    await wait_for_embedded(mesh, user.user_id, lambda e: e.profile_version == int(created["version"]))
    return user


async def test_export_then_delete_the_vectors(mesh: Mesh, rest, enrichment_channel, db) -> None:
    """As identity asks (its service token) when the user exports or deletes their account."""
    user = await _embedded_profile(mesh, rest)
    identity = service_metadata(mesh, "identity")
    stub = user_data_pb2_grpc.UserDataServiceStub(enrichment_channel)
    request = user_data_pb2.ExportUserDataRequest(user_id=user.user_id)
    exported = await stub.ExportUserData(request, metadata=identity, timeout=10)
    assert exported.service == "enrichment"
    data = exported.data
    assert data["embeddedTexts"][0]["offerText"].endswith("Growth marketer")
    kinds = {(v["kind"], v["modelId"], v["dimensions"]) for v in data["profileVectors"]}
    assert kinds == {("offer", "all-MiniLM-L6-v2", 384), ("seek", "all-MiniLM-L6-v2", 384)}
    assert all(len(v["embedding"]) == 384 for v in data["profileVectors"])

    deleted = await stub.DeleteUserData(
        user_data_pb2.DeleteUserDataRequest(user_id=user.user_id), metadata=identity, timeout=10
    )
    assert dict(deleted.deleted) == {
        "profile_vectors": 2,
        "profile_texts": 1,
        "github_imports": 0,
        "suggestions": 0,
        "jobs": 0,
    }
    left = await db.fetchval(
        "SELECT count(*) FROM enrichment.profile_vectors WHERE user_id = $1", uuid.UUID(user.user_id)
    )
    assert left == 0
    again = await stub.DeleteUserData(
        user_data_pb2.DeleteUserDataRequest(user_id=user.user_id), metadata=identity, timeout=10
    )
    assert dict(again.deleted) == {
        "profile_vectors": 0,
        "profile_texts": 0,
        "github_imports": 0,
        "suggestions": 0,
        "jobs": 0,
    }


async def test_only_identity_asks(mesh: Mesh, rest, enrichment_channel) -> None:
    """No user token opens it, not even the owner's own; identity's request must name a user."""
    owner = await _embedded_profile(mesh, rest)
    stub = user_data_pb2_grpc.UserDataServiceStub(enrichment_channel)
    for metadata in (new_user(mesh).metadata, owner.metadata, service_metadata(mesh, "profile")):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.ExportUserData(
                user_data_pb2.ExportUserDataRequest(user_id=owner.user_id), metadata=metadata, timeout=10
            )
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.DeleteUserData(
            user_data_pb2.DeleteUserDataRequest(user_id="not-a-uuid"),
            metadata=service_metadata(mesh, "identity"),
            timeout=10,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_account_export_and_deletion_include_the_vectors(mesh: Mesh, rest, db) -> None:
    """Identity calls enrichment as a user data peer (OPENHR_USER_DATA_PEERS)."""
    user = await sign_up(rest)
    created = (await rest.post("/v1/profiles", json=PROFILE, headers=user.headers)).json()["profile"]
    await wait_for_embedded(mesh, user.user_id, lambda e: e.profile_version == int(created["version"]))
    export = (await rest.get("/v1/me:export", headers=user.headers)).json()
    assert len(export["data"]["enrichment"]["profileVectors"]) == 2
    assert (await rest.delete("/v1/me", headers=user.headers)).status_code == 200
    assert (
        await db.fetchval("SELECT count(*) FROM enrichment.profile_texts WHERE user_id = $1", uuid.UUID(user.user_id))
        == 0
    )
