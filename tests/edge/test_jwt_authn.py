"""Envoy's jwt_authn at the edge (edge/envoy/envoy.yaml.j2) on the real mesh: requests without
a valid access token are refused by Envoy over REST, gRPC and grpc-web and never reach a
service; identity's public methods, CORS preflights and tokens identity signed (EdDSA, checked
against its OKP JWKS) pass; the JWKS is fetched through the edge itself, also when identity
comes up after Envoy."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid

import grpc
import httpx
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from deploy.local.ephemeral import AUDIENCE, ISSUER, Mesh
from deploy.local.infra import free_port
from deploy.local.stack import DESCRIPTOR
from edge.envoy import local_replies
from edge.envoy.render import public_http_routes, render
from openhr.enrichment.v1 import enrichment_pb2
from openhr.identity.v1 import identity_pb2
from services.common.surface import identity_public_paths
from tests.edge.edge_calls import (
    UNAUTHENTICATED,
    UNIMPLEMENTED,
    envoy_stat,
    envoy_stats,
    error_details,
    error_info,
    grpc_call,
    grpc_web_call,
    rest_call,
)
from tests.envoy_process import running_envoy
from tests.logs import assert_never_reached
from tests.users import PASSWORD, new_user
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(180)
IDENTITY_PUBLIC_PATHS = identity_public_paths()

GET_MY_PROFILE = "/openhr.profile.v1.ProfileService/GetMyProfile"
VALIDATOR_CALLS = "http.edge.ext_proc.streams_started"
IDENTITY = "/openhr.identity.v1.IdentityService"


# --------------------------------------------------------------------------- the rendered config


def _values(clusters: list[str], **extra) -> dict:
    return {
        "listen_port": 18080,
        "admin_port": 19901,
        "descriptor_path": str(DESCRIPTOR),
        "clusters": [{"name": n, "host": "127.0.0.1", "port": 50060 + i} for i, n in enumerate(clusters)],
        "rate_limit_token": "edge-token",
        **extra,
    }


def _filters(config: str) -> list[str]:
    hcm = yaml.safe_load(config)["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    return [f["name"].rsplit(".", 1)[1] for f in hcm["typed_config"]["http_filters"]]


def test_auth_and_rate_limits_come_with_the_identity_cluster() -> None:
    full = render(**_values(["identity", "profile", "enrichment", "validation"]))
    # Before the body validator (ext_proc) and the transcoder: see the template for why.
    assert _filters(full) == [
        "cors",
        "grpc_web",
        "jwt_authn",
        "lua",
        "local_ratelimit",
        "ratelimit",
        "query_validation",
        "ext_proc",
        "grpc_json_transcoder",
        "router",
    ]
    provider = yaml.safe_load(full)["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"
    ]["http_filters"][2]["typed_config"]["providers"]["identity"]
    assert (provider["issuer"], provider["audiences"], provider["forward"]) == (ISSUER, [AUDIENCE], True)
    assert provider["remote_jwks"]["http_uri"]["uri"] == "http://127.0.0.1:18080/.well-known/jwks.json"
    assert _filters(render(**_values(["profile"]))) == ["cors", "grpc_web", "grpc_json_transcoder", "router"]
    assert "jwt_authn" not in _filters(render(**_values(["identity", "profile"], auth=False)))
    unlimited = _filters(render(**_values(["identity", "profile"], rate_limits=False)))
    assert not {"lua", "local_ratelimit", "ratelimit"} & set(unlimited)
    for switch in ("auth", "rate_limits"):
        with pytest.raises(ValueError, match="needs the identity cluster"):
            render(**_values(["profile"], **{switch: True}))
    custom = yaml.safe_load(render(**_values(["identity"], jwt_issuer="https://id.example", jwt_audience="aud-x")))
    http_filters = custom["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
        "http_filters"
    ]
    provider = next(f for f in http_filters if f["name"].endswith("jwt_authn"))["typed_config"]["providers"]["identity"]
    assert (provider["issuer"], provider["audiences"]) == ("https://id.example", ["aud-x"])


def _instances(template: str) -> str:
    """A concrete path for a google.api.http template ({x} -> a segment, ** -> two)."""
    return re.sub(r"\{[^}]+\}", "some-id", template).replace("**", "a/b").replace("*", "seg")


def test_public_rest_routes_cover_no_protected_method() -> None:
    """Each REST exemption matches its own public method's routes and no other method's."""
    routes = public_http_routes(DESCRIPTOR)
    assert {r["rpc"] for r in routes} == {m.rsplit("/", 1)[1] for m in IDENTITY_PUBLIC_PATHS}

    def exempt(verb: str, path: str) -> set[str]:
        return {r["rpc"] for r in routes if r["method"] == verb and re.fullmatch(r["regex"][1:-1], path)}

    descriptors = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR.read_bytes())
    checked = 0
    for file in descriptors.file:
        for service in file.service:
            for method in service.method:
                rule = method.options.Extensions[annotations_pb2.http]
                for binding in (rule, *rule.additional_bindings):
                    verb = binding.WhichOneof("pattern")
                    if verb in (None, "custom"):
                        continue
                    path = _instances(getattr(binding, verb))
                    public = f"/{file.package}.{service.name}/{method.name}" in IDENTITY_PUBLIC_PATHS
                    assert exempt(verb.upper(), path) == ({method.name} if public else set()), (method.name, path)
                    checked += 1
    assert checked > 30


# --------------------------------------------------------------------------- tokens


def _claims(user_id: str, **overrides) -> dict:
    now = int(time.time())
    claims = {"sub": user_id, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _dev_key(mesh: Mesh) -> tuple[Ed25519PrivateKey, str]:
    key = serialization.load_pem_private_key((mesh.key_dir / "signing-key.pem").read_bytes(), password=None)
    return key, (mesh.key_dir / "kid").read_text()


def _signed(mesh: Mesh, claims: dict) -> str:
    key, kid = _dev_key(mesh)
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})


def _public_x(mesh: Mesh) -> bytes:
    return json.loads((mesh.key_dir / "jwks.json").read_text())["keys"][0]["x"].encode()


BAD_TOKENS = {
    "missing": lambda mesh, uid: None,
    "garbage": lambda mesh, uid: "not.a.jwt",
    "expired": lambda mesh, uid: _signed(mesh, _claims(uid, iat=int(time.time()) - 3600, exp=int(time.time()) - 600)),
    "no_expiry": lambda mesh, uid: _signed(mesh, _claims(uid, exp=None)),
    "wrong_issuer": lambda mesh, uid: _signed(mesh, _claims(uid, iss="https://evil.example")),
    "wrong_audience": lambda mesh, uid: _signed(mesh, _claims(uid, aud="someone-else")),
    "tampered_signature": lambda mesh, uid: _signed(mesh, _claims(uid))[:-4] + "AAAA",
    "alg_none": lambda mesh, uid: jwt.encode(_claims(uid), None, algorithm="none"),
    "hs256_with_the_public_key": lambda mesh, uid: jwt.encode(
        _claims(uid), _public_x(mesh), algorithm="HS256", headers={"kid": _dev_key(mesh)[1]}
    ),
    "foreign_key": lambda mesh, uid: jwt.encode(
        _claims(uid), Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": _dev_key(mesh)[1]}
    ),
}


@pytest.mark.parametrize("bad", list(BAD_TOKENS))
async def test_a_bad_token_is_refused_at_the_edge_over_rest_grpc_and_grpc_web(
    mesh: Mesh, rest, edge_channel, bad: str
) -> None:
    user = new_user(mesh, "jwt")
    token = BAD_TOKENS[bad](mesh, user.user_id)
    validator_calls = await envoy_stat(mesh, VALIDATOR_CALLS)
    answers = [
        await rest_call(rest, "GET", "/v1/profiles/me", token=token),
        await rest_call(rest, "POST", "/v1/profiles", token=token, json={"displayName": "Not Me"}),
        await grpc_call(edge_channel, GET_MY_PROFILE, token=token),
        await grpc_web_call(rest, GET_MY_PROFILE, token=token),
    ]
    rest_get, rest_post, grpc_answer, web = answers
    for answer in (rest_get, rest_post):
        assert answer.status == 401, answer
        assert answer.headers["content-type"] == "application/json"
    assert grpc_answer.grpc_status == UNAUTHENTICATED, grpc_answer
    assert web.grpc_status == UNAUTHENTICATED, web
    # The services' error shape over every transport: the same message, ErrorInfo with
    # ERROR_REASON_UNAUTHENTICATED (REST body; gRPC / grpc-web grpc-status-details-bin).
    jwt_failure = {"missing": "Jwt is missing", "expired": "Jwt is expired"}.get(bad)
    message = local_replies.TOKEN_FAILURES.get(jwt_failure, local_replies.INVALID_TOKEN)
    for answer in answers:
        assert answer.message == message, answer
        assert error_details(answer) == [error_info("ERROR_REASON_UNAUTHENTICATED")], answer
    # Neither the profile service nor the REST body validator saw any of them.
    control = await rest_call(rest, "GET", "/v1/profiles/me", token=user.token)
    assert control.status == 404, control  # authenticated; no profile yet
    await assert_never_reached(mesh, "profile", [a.request_id for a in answers], control.request_id)
    # The REST body validator (ext_proc) logs no request ids: count Envoy's calls to it
    # instead. Only the control's body reached it.
    validated = await rest_call(rest, "POST", "/v1/profiles", token=user.token, json={"bogus": 1})
    assert validated.status == 400 and "bogus" in validated.message
    assert await envoy_stat(mesh, VALIDATOR_CALLS) == validator_calls + 1


async def test_a_token_identity_signed_passes_the_edge(mesh: Mesh, rest, edge_channel) -> None:
    """Envoy verifies identity's EdDSA tokens against its OKP (Ed25519) JWKS."""
    signed_up = await rest.post(
        "/v1/auth/signup", json={"email": f"jwt-{uuid.uuid4().hex[:10]}@example.com", "password": PASSWORD}
    )
    assert signed_up.status_code == 200, signed_up.text
    token = signed_up.json()["tokens"]["accessToken"]
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    jwks = (await rest.get("/.well-known/jwks.json")).json()
    kid = jwt.get_unverified_header(token)["kid"]
    assert [(k["kty"], k["crv"]) for k in jwks["keys"] if k["kid"] == kid] == [("OKP", "Ed25519")]
    # Authenticated everywhere; the profile service answers NOT_FOUND (no profile yet).
    assert (await rest_call(rest, "GET", "/v1/profiles/me", token=token)).status == 404
    assert (await grpc_call(edge_channel, GET_MY_PROFILE, token=token)).grpc_status == 5
    assert (await grpc_web_call(rest, GET_MY_PROFILE, token=token)).grpc_status == 5
    # A token of the development key (local mode, `make token`) passes too.
    assert (await rest_call(rest, "GET", "/v1/profiles/me", token=mesh.token())).status == 404


async def test_public_auth_routes_need_no_token(mesh: Mesh, rest, edge_channel) -> None:
    """Each answer comes from identity (google.rpc details), none from jwt_authn; a stale or
    broken bearer token on a public route is not even looked at."""
    email = f"pub-{uuid.uuid4().hex[:10]}@example.com"
    signed_up = await rest.post(
        "/v1/auth/signup", json={"email": email, "password": PASSWORD}, headers={"authorization": "Bearer junk"}
    )
    assert signed_up.status_code == 200, signed_up.text
    refresh = signed_up.json()["tokens"]["refreshToken"]
    calls = [
        ("POST", "/v1/auth/login", {"email": email, "password": "wrong-password-1"}, 401),
        ("POST", "/v1/auth/login", {"email": email, "password": PASSWORD}, 200),
        ("POST", "/v1/auth/refresh", {"refreshToken": refresh}, 200),
        ("POST", "/v1/auth/logout", {"refreshToken": "never-issued"}, 200),
        ("POST", "/v1/auth/email:verify", {"token": "never-issued"}, 400),
        ("POST", "/v1/auth/password:forgot", {"email": email}, 200),
        ("POST", "/v1/auth/password:reset", {"token": "never-issued", "newPassword": "harbour-kettle-violet"}, 400),
        ("POST", "/v1/auth/oauth/nosuchprovider:callback", {"code": "c", "state": "s"}, None),
        ("GET", "/v1/auth/oauth/nosuchprovider:start", None, None),
        ("GET", "/.well-known/jwks.json", None, 200),
    ]
    for method, path, body, expected in calls:
        response = await rest.request(method, path, json=body, headers={"authorization": "Bearer junk"})
        assert "www-authenticate" not in response.headers, (path, response.text)
        if expected is not None:
            assert response.status_code == expected, (path, response.text)
        if response.status_code >= 400:  # identity's own error: ErrorInfo details
            assert response.json()["details"], (path, response.text)
    # gRPC and grpc-web, without any token.
    jwks = await grpc_call(edge_channel, f"{IDENTITY}/GetJwks", identity_pb2.GetJwksRequest().SerializeToString())
    assert jwks.grpc_status == 0, jwks
    login = identity_pb2.LoginRequest(email=email, password="wrong-password-1").SerializeToString()
    assert (await grpc_call(edge_channel, f"{IDENTITY}/Login", login)).message == "wrong email or password"
    assert (await grpc_web_call(rest, f"{IDENTITY}/Login", login)).message == "wrong email or password"


async def test_methods_of_a_signed_in_user_need_a_token(mesh: Mesh, rest, edge_channel) -> None:
    answers = []
    for path in ("/v1/auth/password:change", "/v1/auth/email:resend"):
        answer = await rest_call(rest, "POST", path, json={})
        assert answer.status == 401, answer
        answers.append(answer)
    for method in ("ChangePassword", "ResendVerificationEmail"):
        answers.append(await grpc_call(edge_channel, f"{IDENTITY}/{method}"))
        answers.append(await grpc_web_call(rest, f"{IDENTITY}/{method}"))
    for answer in answers:
        assert (answer.grpc_status, answer.message) == (UNAUTHENTICATED, local_replies.MISSING_TOKEN), answer
        assert error_details(answer) == [error_info("ERROR_REASON_UNAUTHENTICATED")], answer


async def test_cors_preflights_need_no_token(rest) -> None:
    for path, method in (("/v1/profiles/me", "GET"), (GET_MY_PROFILE, "POST"), ("/v1/auth/login", "POST")):
        response = await rest.options(
            path,
            headers={
                "origin": "http://localhost:5173",
                "access-control-request-method": method,
                "access-control-request-headers": "authorization, content-type, x-grpc-web",
            },
        )
        assert response.status_code == 200, (path, response.text)
        assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
        assert "retry-after" in response.headers["access-control-expose-headers"]
    # The 401 itself carries CORS headers, so a browser app can read it.
    refused = await rest.get("/v1/profiles/me", headers={"origin": "http://localhost:5173"})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == "http://localhost:5173"


INTERNAL = [
    "/openhr.profile.v1.ProfileInternalService/BatchGetProfiles",
    "/openhr.common.v1.UserDataService/DeleteUserData",
    "/openhr.enrichment.v1.EnrichmentInternalService/BatchNormalizeSkills",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
]


async def test_internal_rpcs_are_unreachable_from_the_edge(mesh: Mesh, rest, edge_channel) -> None:
    """With or without a valid token, over gRPC, grpc-web and REST (JSON to the gRPC path):
    refused by Envoy as no route (before authentication), never seen by a service."""
    user = new_user(mesh, "internal")
    refused = []
    for path in INTERNAL:
        for token in (None, user.token):
            answer = await grpc_call(edge_channel, path, token=token)
            assert answer.grpc_status == UNIMPLEMENTED, (path, answer)
            web = await grpc_web_call(rest, path, token=token)
            assert web.grpc_status == UNIMPLEMENTED, (path, web)
            as_rest = await rest_call(rest, "POST", path, token=token, json={})
            assert as_rest.status == 404, (path, as_rest)
            refused += [answer.request_id, web.request_id, as_rest.request_id]
    # Health is no API of the edge either, and needs no token to be told so.
    assert (await grpc_call(edge_channel, "/grpc.health.v1.Health/Check")).grpc_status == UNIMPLEMENTED
    control = await rest_call(rest, "GET", "/v1/skills:search", token=user.token, params={"query": "py"})
    assert control.status == 200, control
    await assert_never_reached(mesh, "enrichment", refused, control.request_id)
    control = await rest_call(rest, "GET", "/v1/profiles/me", token=user.token)
    await assert_never_reached(mesh, "profile", refused, control.request_id)


# --------------------------------------------------------------------------- JWKS at start-up


class Forwarder:
    """A TCP port that forwards to `target` while open: identity, as Envoy sees it, going up
    and down without touching the real process."""

    def __init__(self, port: int, target: int) -> None:
        self.port, self.target = port, target
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        for task in (
            asyncio.create_task(self._pipe(reader, upstream_writer)),
            asyncio.create_task(self._pipe(upstream_reader, writer)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def test_envoy_started_before_identity_gets_the_jwks_once_identity_is_up(mesh: Mesh, tmp_path) -> None:
    """A second Envoy whose identity cluster is a port that opens later: tokens are refused
    (401) while the JWKS cannot be fetched, accepted within seconds of identity coming up, and
    still accepted - with rate limiting failing open - when identity goes away again."""
    identity_port = free_port()
    forwarder = Forwarder(identity_port, mesh.config.ports["identity"])
    token = mesh.token()
    search = enrichment_pb2.SearchSkillsRequest(query="py", limit=3).SerializeToString()
    try:
        with running_envoy(
            {**mesh.config.ports, "identity": identity_port}, tmp_path, service_keys=mesh.config.service_keys
        ) as edge:
            async with httpx.AsyncClient(base_url=edge.url, timeout=10) as client:

                async def live() -> bool:
                    with contextlib.suppress(httpx.HTTPError):
                        return (await client.get(f"{edge.admin}/ready")).text.strip() == "LIVE"
                    return False

                await eventually(live, message="the second Envoy is not live")
                refused = await rest_call(client, "GET", "/v1/skills:search", token=token, params={"query": "py"})
                assert refused.status == 401, refused  # no JWKS yet: no token can be verified

                await forwarder.open()

                async def accepted() -> bool:
                    answer = await rest_call(client, "GET", "/v1/skills:search", token=token, params={"query": "py"})
                    return answer.status == 200

                # Envoy retries the JWKS every second, not only after its 5-minute cache.
                await eventually(accepted, within=15, message="tokens still refused after identity came up")
                async with grpc.aio.insecure_channel(edge.url.removeprefix("http://")) as channel:
                    ok = await grpc_call(
                        channel, "/openhr.enrichment.v1.SkillsService/SearchSkills", search, token=token
                    )
                    assert ok.grpc_status == 0 and "x-ratelimit-limit" in ok.headers, ok

                    # Identity gone: the cached JWKS still verifies, and Envoy's own limits still
                    # count (their headers); a sign-up's rate-limit call to identity fails and the
                    # request goes on (failure_mode_deny: false), to find identity down: 503.
                    await forwarder.close()
                    for _ in range(3):
                        answer = await rest_call(
                            client, "GET", "/v1/skills:search", token=token, params={"query": "py"}
                        )
                        assert answer.status == 200, answer
                        assert "x-ratelimit-limit" in answer.headers, answer
                        ok = await grpc_call(
                            channel, "/openhr.enrichment.v1.SkillsService/SearchSkills", search, token=token
                        )
                        assert ok.grpc_status == 0, ok
                    signup = {"email": f"down-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD}
                    unavailable = await rest_call(client, "POST", "/v1/auth/signup", json=signup)
                    assert unavailable.status == 503, unavailable
                    stats = await envoy_stats(edge.admin, r"\.ratelimit\.edge\.failure_mode_allowed$")
                    assert sum(stats.values()) >= 1, stats
                    assert (await rest_call(client, "GET", "/v1/skills:search", params={"query": "py"})).status == 401
    finally:
        await forwarder.close()
