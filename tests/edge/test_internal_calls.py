"""Calls between services are authenticated (services/common/service_auth.py): an internal RPC
takes the end user's token (on behalf of the user) or a peer service's own short-lived token,
nothing else; a service token opens no public RPC, no user's rows and not the edge.

(That internal RPCs are unreachable through the edge at all is in test_jwt_authn.py.)"""

from __future__ import annotations

import json
import time
import uuid

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from deploy.local.ephemeral import Mesh
from openhr.common.v1 import user_data_pb2, user_data_pb2_grpc
from openhr.enrichment.v1 import enrichment_pb2, enrichment_pb2_grpc
from openhr.profile.v1 import profile_pb2, profile_pb2_grpc
from services.common import auth, clients
from services.common.service_auth import AUDIENCE, ServiceTokenIssuer, is_internal
from tests.users import new_user

NORMALIZE = enrichment_pb2.BatchNormalizeSkillsRequest(names=["python", "k8s"])


def _keys(mesh: Mesh):
    return mesh.config.data_dir / "service-keys"


def _issuer(mesh: Mesh, name: str = "profile") -> ServiceTokenIssuer:
    issuer = ServiceTokenIssuer.from_dir(_keys(mesh), name)
    assert issuer is not None, f"{name} created no service key"
    return issuer


def _profile_key(mesh: Mesh) -> Ed25519PrivateKey:
    return serialization.load_pem_private_key((_keys(mesh) / "profile.pem").read_bytes(), password=None)


def _token(key: Ed25519PrivateKey, kid: str = "profile", **overrides) -> str:
    now = int(time.time())
    claims = {"iss": kid, "sub": kid, "svc": kid, "aud": AUDIENCE, "iat": now, "exp": now + 60, "jti": "x"}
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm="EdDSA", headers={"kid": kid})


def _metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token is not None else ()


async def _normalize(mesh: Mesh, token: str | None):
    async with grpc.aio.insecure_channel(mesh.target("enrichment")) as channel:
        stub = enrichment_pb2_grpc.EnrichmentInternalServiceStub(channel)
        return await stub.BatchNormalizeSkills(NORMALIZE, metadata=_metadata(token), timeout=10)


def test_internal_services_are_known_by_name() -> None:
    assert is_internal("/openhr.profile.v1.ProfileInternalService/BatchGetProfiles")
    assert is_internal("/openhr.common.v1.UserDataService/DeleteUserData")
    assert not is_internal("/openhr.profile.v1.ProfileService/GetMyProfile")
    assert not is_internal("/openhr.identity.v1.IdentityService/Login")


async def test_an_internal_rpc_takes_a_user_token_or_a_service_token_only(mesh: Mesh) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _normalize(mesh, None)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    by_user = await _normalize(mesh, mesh.token())  # on behalf of a user, as today
    by_service = await _normalize(mesh, _issuer(mesh).token())  # background work
    assert [r.name for r in by_user.results] == [r.name for r in by_service.results]
    assert by_service.results[0].taxonomy_id


FORGED = {
    "foreign_key_claiming_profile": lambda mesh: _token(Ed25519PrivateKey.generate()),
    "profile_key_claiming_identity": lambda mesh: _token(_profile_key(mesh), svc="identity"),
    "kid_of_identity_signed_by_profile": lambda mesh: _token(_profile_key(mesh), kid="identity"),
    "unknown_service": lambda mesh: _token(Ed25519PrivateKey.generate(), kid="billing"),
    "path_as_kid": lambda mesh: _token(_profile_key(mesh), kid="../dev-keys/jwks"),
    "expired": lambda mesh: _token(_profile_key(mesh), iat=int(time.time()) - 600, exp=int(time.time()) - 300),
    "lives_a_day": lambda mesh: _token(_profile_key(mesh), exp=int(time.time()) + 86400),
    "user_audience": lambda mesh: _token(_profile_key(mesh), aud="openhr"),
    "no_svc_claim": lambda mesh: _token(_profile_key(mesh), svc=None),
    "hs256_with_the_public_key": lambda mesh: jwt.encode(
        {"iss": "profile", "sub": "profile", "svc": "profile", "aud": AUDIENCE, "iat": 0, "exp": 2**31},
        json.loads((_keys(mesh) / "profile.jwk").read_text())["x"].encode(),
        algorithm="HS256",
        headers={"kid": "profile"},
    ),
    "alg_none": lambda mesh: jwt.encode(
        {"iss": "profile", "sub": "profile", "svc": "profile", "aud": AUDIENCE}, None, algorithm="none"
    ),
}


@pytest.mark.parametrize("forged", list(FORGED))
async def test_a_forged_service_token_is_unauthenticated(mesh: Mesh, forged: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _normalize(mesh, FORGED[forged](mesh))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, refused.value.details()


async def test_a_service_token_opens_no_public_rpc_and_not_the_edge(mesh: Mesh, rest, edge_channel) -> None:
    token = _issuer(mesh).token()
    async with grpc.aio.insecure_channel(mesh.target("profile")) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await profile_pb2_grpc.ProfileServiceStub(channel).GetMyProfile(
                profile_pb2.GetMyProfileRequest(), metadata=_metadata(token), timeout=10
            )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    async with grpc.aio.insecure_channel(mesh.target("enrichment")) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await enrichment_pb2_grpc.SkillsServiceStub(channel).SearchSkills(
                enrichment_pb2.SearchSkillsRequest(query="py"), metadata=_metadata(token), timeout=10
            )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    at_edge = await rest.get("/v1/skills:search", params={"query": "py"}, headers={"authorization": f"Bearer {token}"})
    assert at_edge.status_code == 401, at_edge.text
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await enrichment_pb2_grpc.EnrichmentInternalServiceStub(edge_channel).BatchNormalizeSkills(
            NORMALIZE, metadata=_metadata(token), timeout=10
        )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED  # jwt_authn: not identity's token


async def _profile(rest, user, visibility: str) -> dict:
    response = await rest.post(
        "/v1/profiles",
        json={"displayName": f"Svc {uuid.uuid4().hex[:6]}", "visibility": visibility},
        headers=user.headers,
    )
    assert response.status_code == 200, response.text
    return response.json()["profile"]


async def test_the_kit_client_speaks_for_the_user_or_else_for_its_service(mesh: Mesh, rest) -> None:
    """services.common.clients: with a user calling, the user's token goes on (their rights);
    without one, the service's own token (no user in the RLS context: public rows only)."""
    public_owner, private_owner = new_user(mesh, "svc-public"), new_user(mesh, "svc-private")
    await _profile(rest, public_owner, "VISIBILITY_PUBLIC")
    await _profile(rest, private_owner, "VISIBILITY_PRIVATE")
    request = profile_pb2.BatchGetProfilesRequest(user_ids=[public_owner.user_id, private_owner.user_id])
    channel = clients.channel(mesh.target("profile"))
    clients.set_service_identity(_issuer(mesh))
    try:
        stub = profile_pb2_grpc.ProfileInternalServiceStub(channel)
        as_service = await stub.BatchGetProfiles(request)
        assert [p.user_id for p in as_service.profiles] == [public_owner.user_id]
        auth.set_principal(auth.Principal(user_id=private_owner.user_id, token=private_owner.token))
        try:
            as_user = await stub.BatchGetProfiles(request)
        finally:
            auth.set_principal(None)
        assert sorted(p.user_id for p in as_user.profiles) == sorted([public_owner.user_id, private_owner.user_id])
        # A service cannot act as a user on their data either.
        data = user_data_pb2_grpc.UserDataServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await data.ExportUserData(user_data_pb2.ExportUserDataRequest(user_id=private_owner.user_id))
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        clients.set_service_identity(None)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.BatchGetProfiles(request)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        clients.set_service_identity(None)
        await channel.close()
