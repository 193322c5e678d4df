"""REST bodies with fields the contracts do not have are refused at the edge.

Envoy's grpc_json_transcoder drops unknown JSON fields silently (envoyproxy/envoy#46623), so
`{"displayname": "A"}` would create a profile without a name. The edge's validator
(edge/validation, an ext_proc filter before the transcoder) answers such a body with a 400
naming the field, in the google.rpc.Status JSON every REST error has, and nothing reaches the
service. Bodies only: GET, gRPC and grpc-web never go through it."""

from __future__ import annotations

import socket
import uuid

import grpc
import httpx
import pytest

from deploy.local.ephemeral import Mesh
from deploy.local.stack import DESCRIPTOR
from edge.envoy.render import render
from openhr.profile.v1 import profile_pb2, profile_pb2_grpc
from tests.envoy_process import assert_valid, cluster_healthy, running_envoy
from tests.grpcweb import DATA, TRAILERS, call_headers, frame, frames

BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
PROFILE = "/openhr.profile.v1.ProfileService"

pytestmark = pytest.mark.timeout(120)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def violations(body: dict) -> dict[str, str]:
    return {
        v["field"]: v["description"]
        for detail in body["details"]
        if detail["@type"] == BAD_REQUEST
        for v in detail["fieldViolations"]
    }


def assert_names(response: httpx.Response, field: str) -> str:
    """A 400 in google.rpc.Status JSON whose BadRequest names `field`; its description."""
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["code"] == 3, body  # INVALID_ARGUMENT
    assert field in body["message"], body
    found = violations(body)
    assert field in found, body
    return found[field]


async def my_profile(rest, headers: dict[str, str]) -> dict | None:
    response = await rest.get("/v1/profiles/me", headers=headers)
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return response.json()["profile"]


def processor_streams(mesh: Mesh, checks: str = "") -> int:
    """How many ext_proc streams Envoy has opened to the validator so far: to check bodies, or
    (checks="query") query strings."""
    name = r"^http\.edge\.ext_proc\." + (f"{checks}\\." if checks else "") + "streams_started$"
    stats = httpx.get(f"http://127.0.0.1:{mesh.config.admin_port}/stats", params={"filter": name}, timeout=5).text
    return int(stats.split(":")[1]) if stats.strip() else 0


# --------------------------------------------------------------------------- refused


async def test_unknown_top_level_field(mesh: Mesh, rest) -> None:
    headers = bearer(mesh.token())
    response = await rest.post("/v1/profiles", json={"displayName": "A", "bogus": 1}, headers=headers)
    assert assert_names(response, "profile.bogus") == "unknown field"
    assert response.json()["details"][0]["reason"] == "ERROR_REASON_INVALID_FIELD"  # as the services say it
    assert await my_profile(rest, headers) is None  # nothing reached the service


async def test_misspelt_field_gets_a_suggestion(mesh: Mesh, rest) -> None:
    headers = bearer(mesh.token())
    response = await rest.post("/v1/profiles", json={"displayname": "A"}, headers=headers)
    assert assert_names(response, "profile.displayname") == 'unknown field; did you mean "displayName"?'
    assert await my_profile(rest, headers) is None


async def test_unknown_nested_field_names_its_path(mesh: Mesh, rest) -> None:
    headers = bearer(mesh.token())
    response = await rest.post(
        "/v1/profiles", json={"displayName": "A", "preferences": {"stage": {"stagez": []}}}, headers=headers
    )
    assert assert_names(response, "profile.preferences.stage.stagez").startswith("unknown field")
    assert await my_profile(rest, headers) is None


async def test_unknown_enum_name(mesh: Mesh, rest) -> None:
    headers = bearer(mesh.token())
    response = await rest.post("/v1/profiles", json={"displayName": "A", "role": "ROLE_NOPE"}, headers=headers)
    assert "ROLE_NOPE" in assert_names(response, "profile.role")
    response = await rest.post(
        "/v1/profiles",
        json={"displayName": "A", "preferences": {"stage": {"stages": ["STARTUP_STAGE_SEED", "STAGE_NOPE"]}}},
        headers=headers,
    )
    assert "STAGE_NOPE" in assert_names(response, "profile.preferences.stage.stages[1]")
    assert await my_profile(rest, headers) is None


async def test_update_with_unknown_field_changes_nothing(mesh: Mesh, rest) -> None:
    headers = bearer(mesh.token())
    created = await rest.post("/v1/profiles", json={"displayName": "Ada", "headline": "First"}, headers=headers)
    assert created.status_code == 200, created.text
    profile = created.json()["profile"]

    response = await rest.patch(
        f"/v1/profiles/{profile['profileId']}",
        params={"updateMask": "headline"},
        json={"headline": "Second", "headlien": "typo"},
        headers=headers,
    )
    assert_names(response, "profile.headlien")
    assert await my_profile(rest, headers) == profile  # same version, same headline

    response = await rest.patch(
        f"/v1/profiles/{profile['profileId']}",
        params={"updateMask": "headline"},
        json={"headline": "Second"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["profile"]["version"] == "2"


async def test_body_star_method(mesh: Mesh, rest) -> None:
    """body "*": the request message is the body, minus the fields the path sets."""
    headers = bearer(mesh.token())
    profile = (await rest.post("/v1/profiles", json={"displayName": "Bo"}, headers=headers)).json()["profile"]
    path = f"/v1/profiles/{profile['profileId']}/skills"

    assert_names(await rest.post(path, json={"name": "Go", "proficiency": 3, "level": 5}, headers=headers), "level")
    other = str(uuid.uuid4())
    assert_names(await rest.post(path, json={"name": "Go", "profileId": other}, headers=headers), "profileId")
    assert_names(await rest.post(path, json={"name": "Go", "proficiency": "expert"}, headers=headers), "proficiency")
    listed = await rest.get(path, headers=headers)
    assert listed.json()["skills"] == []

    added = await rest.post(path, json={"name": "Go", "proficiency": 3}, headers=headers)
    assert added.status_code == 200, added.text


async def test_content_type_does_not_dodge_the_check(mesh: Mesh, rest) -> None:
    """Whatever the transcoder transcodes is checked: only application/grpc[+…] is skipped,
    the test the transcoder itself uses to pass gRPC through."""
    headers = bearer(mesh.token())
    for content_type in (
        "text/plain",
        "application/grpc-json",
        "application/grpc;x",
        "application/x-www-form-urlencoded",
    ):
        response = await rest.post(
            "/v1/profiles",
            content=b'{"displayName": "A", "bogus": 1}',
            headers={**headers, "content-type": content_type},
        )
        assert_names(response, "profile.bogus")
    assert await my_profile(rest, headers) is None


async def test_malformed_json_keeps_the_transcoders_400(mesh: Mesh, rest) -> None:
    headers = {**bearer(mesh.token()), "content-type": "application/json"}
    response = await rest.post("/v1/profiles", content=b'{"displayName": ', headers=headers)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["code"] == 3
    assert await my_profile(rest, headers) is None


# --------------------------------------------------------------------------- untouched


async def test_valid_body_goes_through(mesh: Mesh, rest) -> None:
    headers = bearer(mesh.token())
    body = {
        "displayName": "Alice Example",
        "role": "ROLE_TECHNICAL_COFOUNDER",
        "years_experience": 7,  # proto names are valid JSON keys too
        "location": {"city": "Berlin", "countryCode": "DE"},
        "preferences": {"stage": {"stages": ["STARTUP_STAGE_SEED"], "importance": "IMPORTANCE_MUST_HAVE"}},
    }
    response = await rest.post("/v1/profiles", json=body, params={"requestId": str(uuid.uuid4())}, headers=headers)
    assert response.status_code == 200, response.text
    profile = response.json()["profile"]
    assert (profile["displayName"], profile["yearsExperience"]) == ("Alice Example", 7)
    assert await my_profile(rest, headers) == profile


async def test_requests_without_body_never_reach_the_validator(mesh: Mesh, rest) -> None:
    """... for their body: those with a query string reach it for their query alone."""
    headers = bearer(mesh.token())
    before, queries = processor_streams(mesh), processor_streams(mesh, "query")
    search = await rest.get("/v1/skills:search", params={"query": "py"}, headers=headers)
    assert search.status_code == 200 and search.json()["skills"]
    assert (await rest.get("/v1/profiles/me", headers=headers)).status_code == 404
    bad_query = await rest.get("/v1/skills:search", params={"query": "py", "bogus": "1"}, headers=headers)
    assert_names(bad_query, "bogus")
    preflight = await rest.options(
        "/v1/profiles", headers={"origin": "http://localhost:5173", "access-control-request-method": "POST"}
    )
    assert preflight.status_code == 200
    assert processor_streams(mesh) == before
    assert processor_streams(mesh, "query") == queries + 2
    # ... while a body does:
    await rest.post("/v1/profiles", json={"displayName": "Counted"}, headers=headers)
    assert processor_streams(mesh) == before + 1


async def test_grpc_and_grpc_web_never_reach_the_validator(mesh: Mesh, rest, edge_channel) -> None:
    token = mesh.token()
    before = processor_streams(mesh)

    stub = profile_pb2_grpc.ProfileServiceStub(edge_channel)
    created = await stub.CreateProfile(
        profile_pb2.CreateProfileRequest(profile=profile_pb2.Profile(display_name="Grace")),
        metadata=(("authorization", f"Bearer {token}"),),
        timeout=10,
    )
    assert created.profile.display_name == "Grace"

    response = await rest.post(
        f"{PROFILE}/GetMyProfile",
        content=frame(profile_pb2.GetMyProfileRequest().SerializeToString()),
        headers=call_headers(token),
    )
    received = [f async for f in frames(response)]
    assert [f.flag for f in received] == [DATA, TRAILERS]
    assert profile_pb2.GetMyProfileResponse.FromString(received[0].payload).profile.display_name == "Grace"

    assert processor_streams(mesh) == before


# --------------------------------------------------------------------------- config


def test_config_with_validation_validates(tmp_path) -> None:
    """Every cluster plus the validator, by DNS name as on Kubernetes."""
    names = ["identity", "profile", "matching", "messaging", "enrichment", "validation"]
    config = tmp_path / "envoy.yaml"
    config.write_text(
        render(
            listen_port=18080,
            admin_port=19901,
            descriptor_path=str(DESCRIPTOR),
            clusters=[{"name": n, "host": f"{n}.openhr.svc", "port": 50060 + i} for i, n in enumerate(names)],
            rate_limit_token="edge-token",
        )
    )
    assert_valid(config)
    text = config.read_text()
    assert "envoy.filters.http.ext_proc" in text and "failure_mode_allow: false" in text


def test_no_validation_cluster_no_filter() -> None:
    text = render(
        listen_port=18080,
        admin_port=19901,
        descriptor_path=str(DESCRIPTOR),
        clusters=[{"name": "profile", "host": "127.0.0.1", "port": 50061}],
    )
    assert "ext_proc" not in text and "openhr.validation" not in text


# --------------------------------------------------------------------------- validator down


@pytest.fixture(scope="module")
def edge_without_validator(mesh: Mesh, tmp_path_factory):
    """A second Envoy in front of the test mesh's services whose validator is not running."""
    dead = socket.socket()  # bound, never listening: connections are refused
    dead.bind(("127.0.0.1", 0))
    ports = {
        "profile": mesh.config.ports["profile"],
        "enrichment": mesh.config.ports["enrichment"],
        "validation": dead.getsockname()[1],
    }
    try:
        with running_envoy(ports, tmp_path_factory.mktemp("edge-no-validator")) as edge:
            edge.wait_until(
                lambda: cluster_healthy(edge.admin, "profile") and cluster_healthy(edge.admin, "enrichment")
            )
            yield edge.url
    finally:
        dead.close()


async def test_validator_down_fails_rest_writes_closed(mesh: Mesh, rest, edge_without_validator) -> None:
    """failure_mode_allow: false. A REST body is never let through unchecked; requests the
    validator never sees keep working."""
    token = mesh.token()
    headers = bearer(token)
    async with httpx.AsyncClient(base_url=edge_without_validator, timeout=10) as edge:
        refused = await edge.post("/v1/profiles", json={"displayName": "Unchecked"}, headers=headers)
        assert refused.status_code >= 500, refused.text
        assert refused.headers["content-type"].startswith("application/json")
        assert refused.json()["code"] in (13, 14), refused.text  # INTERNAL / UNAVAILABLE
        assert await my_profile(rest, headers) is None

        assert (await edge.get("/v1/profiles/me", headers=headers)).status_code == 404  # reached the service
        search = await edge.get("/v1/skills:search", params={"query": "py"}, headers=headers)
        assert search.status_code == 200

    async with grpc.aio.insecure_channel(edge_without_validator.removeprefix("http://")) as channel:
        created = await profile_pb2_grpc.ProfileServiceStub(channel).CreateProfile(
            profile_pb2.CreateProfileRequest(profile=profile_pb2.Profile(display_name="Over gRPC")),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=10,
        )
    assert created.profile.display_name == "Over gRPC"


@pytest.mark.parametrize("token", [True, False], ids=["signed_in", "sign_in_without_token"])
async def test_deeply_nested_json_is_a_400_not_a_500(mesh: Mesh, rest, token: bool) -> None:
    """JSON nested 3,000 deep once answered 500 (RecursionError in the validator), also on
    sign-in, which needs no token: the depth is bounded before the body is parsed."""
    deep = "[" * 3000 + "]" * 3000
    if token:
        path, headers = "/v1/profiles", {"authorization": f"Bearer {mesh.token()}"}
        body = '{"displayName": ' + deep + "}"
    else:
        path, headers = "/v1/auth/login", {}
        body = '{"email": ' + deep + ', "password": "x"}'
    response = await rest.post(path, content=body, headers={**headers, "content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert "nested deeper than" in response.json()["message"]
    # Brackets inside strings are text, not nesting.
    text = "[" * 3000
    response = await rest.post("/v1/auth/login", json={"email": "a@example.com", "password": text})
    assert response.status_code in (400, 401) and "nested" not in response.text, response.text
