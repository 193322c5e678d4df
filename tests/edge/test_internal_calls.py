"""Calls between services are authenticated (services/common/service_auth.py): an internal RPC
takes the short-lived token of a service it names (surface.INTERNAL_CALLERS) and nothing else,
never a user's; a service token opens no public RPC, no user's rows and not the edge.

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
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

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


async def test_an_internal_rpc_takes_the_token_of_a_service_it_names_only(mesh: Mesh) -> None:
    """EnrichmentInternalService answers profile and matching (surface.INTERNAL_CALLERS): no
    token is UNAUTHENTICATED, a user's valid token or another service's PERMISSION_DENIED."""
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _normalize(mesh, None)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    for token in (mesh.token(), _issuer(mesh, "identity").token()):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _normalize(mesh, token)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, refused.value.details()
    by_service = await _normalize(mesh, _issuer(mesh).token())
    assert [r.name for r in by_service.results][:1] == ["Python"]
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
    # Internal services are no route of the edge: UNIMPLEMENTED, before any token is looked at.
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def _profile(rest, user, visibility: str) -> dict:
    response = await rest.post(
        "/v1/profiles",
        json={"displayName": f"Svc {uuid.uuid4().hex[:6]}", "visibility": visibility},
        headers=user.headers,
    )
    assert response.status_code == 200, response.text
    return response.json()["profile"]


async def test_the_kit_client_speaks_for_its_service_on_internal_rpcs(mesh: Mesh, rest) -> None:
    """services.common.clients: to an internal RPC the service's own token goes, even while a
    user is calling (no user in the RLS context: public rows only); without a service identity
    the call is UNAUTHENTICATED, and a service the RPC does not name is PERMISSION_DENIED."""
    public_owner, private_owner = new_user(mesh, "svc-public"), new_user(mesh, "svc-private")
    await _profile(rest, public_owner, "VISIBILITY_PUBLIC")
    await _profile(rest, private_owner, "VISIBILITY_PRIVATE")
    request = profile_pb2.BatchGetProfilesRequest(user_ids=[public_owner.user_id, private_owner.user_id])
    channel = clients.channel(mesh.target("profile"))
    clients.set_service_identity(_issuer(mesh, "enrichment"))
    try:
        stub = profile_pb2_grpc.ProfileInternalServiceStub(channel)
        as_service = await stub.BatchGetProfiles(request)
        assert [p.user_id for p in as_service.profiles] == [public_owner.user_id]
        auth.set_principal(auth.Principal(user_id=private_owner.user_id, token=private_owner.token))
        try:
            while_user_calls = await stub.BatchGetProfiles(request)
        finally:
            auth.set_principal(None)
        assert [p.user_id for p in while_user_calls.profiles] == [public_owner.user_id]
        # Only identity exports or deletes a user's data.
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


async def _refused(call) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    return refused.value.code()


async def test_the_rate_limit_service_answers_envoy_only(mesh: Mesh, rest) -> None:
    """Anyone reaching identity's port could otherwise lock an address out of sign-in (hits_addend)
    or learn counts: without Envoy's token, ShouldRateLimit is refused."""
    victim = new_user(mesh, "victim")
    entries = [{"key": "auth", "value": "login"}, {"key": "remote_address", "value": "127.0.0.1"}]
    request = rls_pb2.RateLimitRequest(
        domain="openhr", hits_addend=2_000_000_000, descriptors=[ratelimit_pb2.RateLimitDescriptor(entries=entries)]
    )
    async with grpc.aio.insecure_channel(mesh.target("identity")) as channel:
        stub = rls_pb2_grpc.RateLimitServiceStub(channel)
        for token in (None, victim.token, _issuer(mesh, "profile").token()):
            code = await _refused(stub.ShouldRateLimit(request, metadata=_metadata(token), timeout=10))
            assert code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED), (token, code)
    answer = await rest.get("/v1/skills:search", params={"query": "py"}, headers=victim.headers)
    assert answer.status_code == 200, answer.text


def _enriched(count: int, source=profile_pb2.SKILL_SOURCE_GITHUB, prefix="skill") -> list[profile_pb2.EnrichedSkill]:
    return [profile_pb2.EnrichedSkill(name=f"{prefix}-{k}", proficiency=3, source=source) for k in range(count)]


async def test_merge_enriched_skills_is_for_enrichment_only_and_keeps_the_profile_rules(mesh: Mesh, rest) -> None:
    owner = new_user(mesh, "merge")
    profile_id = (await _profile(rest, owner, "VISIBILITY_PUBLIC"))["profileId"]

    def merge(skills, token):
        request = profile_pb2.MergeEnrichedSkillsRequest(user_id=owner.user_id, skills=skills)
        return stub.MergeEnrichedSkills(request, metadata=_metadata(token), timeout=10)

    async with grpc.aio.insecure_channel(mesh.target("profile")) as channel:
        stub = profile_pb2_grpc.ProfileInternalServiceStub(channel)
        enrichment = _issuer(mesh, "enrichment").token()
        # The owner's own token and another service's token are refused.
        assert await _refused(merge(_enriched(150), owner.token)) == grpc.StatusCode.PERMISSION_DENIED
        assert await _refused(merge(_enriched(2), _issuer(mesh, "identity").token())) == (
            grpc.StatusCode.PERMISSION_DENIED
        )
        # As enrichment: enriched sources only, and never more than 100 skills on the profile.
        for source in (profile_pb2.SKILL_SOURCE_MANUAL, profile_pb2.SKILL_SOURCE_UNSPECIFIED):
            assert await _refused(merge(_enriched(2, source), enrichment)) == grpc.StatusCode.INVALID_ARGUMENT
        merged = await merge(_enriched(3), enrichment)
        assert [s.source for s in merged.skills] == [profile_pb2.SKILL_SOURCE_GITHUB] * 3
        over = await merge(_enriched(150, prefix="more"), enrichment)
        assert (len(over.skills), len(over.not_added)) == (97, 53)
        listed = await rest.get(f"/v1/profiles/{profile_id}/skills", headers=owner.headers)
        assert len(listed.json()["skills"]) == 100


async def test_user_data_is_exported_and_deleted_for_identity_only(mesh: Mesh, rest) -> None:
    owner = new_user(mesh, "userdata")
    profile_id = (await _profile(rest, owner, "VISIBILITY_PRIVATE"))["profileId"]
    request = user_data_pb2.ExportUserDataRequest(user_id=owner.user_id)
    async with grpc.aio.insecure_channel(mesh.target("profile")) as channel:
        stub = user_data_pb2_grpc.UserDataServiceStub(channel)
        for token in (owner.token, _issuer(mesh, "enrichment").token()):
            code = await _refused(stub.ExportUserData(request, metadata=_metadata(token), timeout=10))
            assert code == grpc.StatusCode.PERMISSION_DENIED
        exported = await stub.ExportUserData(request, metadata=_metadata(_issuer(mesh, "identity").token()), timeout=10)
    assert exported.service == "profile" and exported.data["profile"]["profileId"] == profile_id
