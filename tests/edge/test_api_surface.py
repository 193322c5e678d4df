"""What the edge answers besides the API itself, without a token: the OpenAPI document (equal to
the one `make protos` generates from the contracts), the API reference page, the health path of
load balancers; and a path that is no route answers 404 before authentication, over REST,
gRPC and grpc-web."""

from __future__ import annotations

import json

import pytest

from deploy.local.ephemeral import Mesh
from deploy.local.stack import REPO_ROOT
from edge.envoy import local_replies
from edge.envoy.render import DOCS_CSP, NO_CONTENT_CSP
from tests.edge.edge_calls import UNIMPLEMENTED, error_details, error_info, grpc_call, grpc_web_call, rest_call
from tests.logs import assert_never_reached
from tests.users import new_user

pytestmark = pytest.mark.timeout(120)

GENERATED = REPO_ROOT / "gen" / "openapi.json"


async def test_the_openapi_document_is_served_as_generated(rest) -> None:
    response = await rest.get("/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-security-policy"] == NO_CONTENT_CSP
    assert response.json() == json.loads(GENERATED.read_text())
    assert "/v1/profiles/me" in response.json()["paths"]


async def test_the_docs_page_and_its_files_are_served_under_their_own_policy(rest) -> None:
    page = await rest.get("/docs")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == DOCS_CSP
    for path in ("/docs/swagger-ui-bundle.js", "/docs/init.js", "/docs/swagger-ui.css"):
        assert path in page.text
        response = await rest.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"] == DOCS_CSP
    assert '"/openapi.json"' in (await rest.get("/docs/init.js")).text


async def test_the_health_path_answers_without_a_token(rest) -> None:
    for method in ("GET", "HEAD"):
        response = await rest.request(method, "/healthz")
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
    assert (await rest.get("/healthz")).text == "ok\n"
    # Only GET and HEAD: a POST is an unknown route like any other.
    assert (await rest.post("/healthz", json={})).status_code == 404


UNKNOWN_REST = [
    ("GET", "/nothing-here"),
    ("GET", "/v1/nothing-here"),
    ("GET", "/v2/profiles/me"),
    ("GET", "/v1/profiles/me/and/more"),
    ("GET", "/v1/auth/login"),  # a public route, by another method
    ("PUT", "/v1/profiles/me"),
    ("DELETE", "/openapi.json"),
]


@pytest.mark.parametrize("with_token", [False, True], ids=["no_token", "token"])
async def test_a_path_that_is_no_route_answers_404_before_authentication(
    mesh: Mesh, rest, edge_channel, with_token: bool
) -> None:
    token = mesh.token() if with_token else None
    for method, path in UNKNOWN_REST:
        answer = await rest_call(rest, method, path, token=token)
        assert answer.status == 404, (method, path, answer)
        assert answer.body == {
            "code": 5,
            "message": local_replies.NOT_FOUND_MESSAGE,
            "details": [error_info("ERROR_REASON_NOT_FOUND")],
        }, (method, path, answer.body)
        assert answer.headers["content-type"] == "application/json"
    # gRPC and grpc-web: a service or method the edge does not route.
    for path in ("/openhr.nothing.v1.NoService/Call", "/grpc.health.v1.Health/Check"):
        assert (await grpc_call(edge_channel, path, token=token)).grpc_status == UNIMPLEMENTED, path
        assert (await grpc_web_call(rest, path, token=token)).grpc_status == UNIMPLEMENTED, path


async def test_a_route_still_needs_a_token(mesh: Mesh, rest, edge_channel) -> None:
    """The control: known REST routes and public services' gRPC methods ask for a token first."""
    user = new_user(mesh, "surface")
    answers = [
        await rest_call(rest, "GET", "/v1/profiles/me"),
        await rest_call(rest, "GET", "/v1/profiles/me/"),
        await rest_call(rest, "GET", "/v1/profiles/someone"),
        await rest_call(rest, "GET", "/v1/skills:search", params={"query": "py"}),
        await grpc_call(edge_channel, "/openhr.profile.v1.ProfileService/NoSuchMethod"),
        await grpc_web_call(rest, "/openhr.profile.v1.ProfileService/GetMyProfile"),
    ]
    for answer in answers:
        assert answer.grpc_status == 16, answer
        assert error_details(answer) == [error_info("ERROR_REASON_UNAUTHENTICATED")], answer
    control = await rest_call(rest, "GET", "/v1/profiles/me", token=user.token)
    assert control.status == 404, control  # signed in, no profile yet
    await assert_never_reached(mesh, "profile", [a.request_id for a in answers], control.request_id)
