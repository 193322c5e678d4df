"""Every 400 a REST caller gets has one shape, whoever answers it: google.rpc.Status JSON with
ErrorInfo and a google.rpc.BadRequest naming each field as the request named it (JSON names,
camelCase) - a body that is not JSON, a bad query parameter (the edge's validator, before
Envoy's transcoder could answer in its own words) or a field a service refuses. Never a proto
type name or an echo of the body. gRPC callers keep the proto names."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from deploy.local.ephemeral import Mesh
from edge.validation.rules import NOT_JSON, UNKNOWN_PARAMETER
from openhr.identity.v1 import identity_pb2, identity_pb2_grpc
from openhr.profile.v1 import profile_pb2, profile_pb2_grpc
from tests.edge.edge_calls import error_info, rest_call
from tests.users import new_user

pytestmark = pytest.mark.timeout(120)

BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
SEARCH = "/v1/skills:search"
# What the transcoder and protobuf would have said: none of it may reach a REST caller.
INTERNAL_WORDS = ("TYPE_INT32", "Could not find field", ".v1.", "SearchSkillsRequest", "Unexpected token")


def field_violations(body: dict) -> dict[str, str]:
    """The BadRequest of a google.rpc.Status JSON body (with ErrorInfo INVALID_FIELD beside it)."""
    assert body["code"] == 3, body
    assert error_info("ERROR_REASON_INVALID_FIELD") in body["details"], body
    [bad] = [d for d in body["details"] if d["@type"] == BAD_REQUEST]
    return {v["field"]: v["description"] for v in bad["fieldViolations"]}


def assert_clean(text: str, *secrets: str) -> None:
    for word in (*INTERNAL_WORDS, *secrets):
        assert word not in text, (word, text)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"displayName": ', "line 1 column 17"),
        (b"not json at all: my-secret-value", "line 1 column 1"),
        (b'{"displayName": "A"\n "headline": "my-secret-value"}', "line 2 column 2"),
        (b'{"displayName": "\xff my-secret-value"}', None),
    ],
    ids=["truncated", "not_json", "missing_comma", "not_utf8"],
)
async def test_a_body_that_is_not_json_is_a_bad_request_that_echoes_nothing(
    mesh: Mesh, rest, body: bytes, where: str | None
) -> None:
    user = new_user(mesh, "rest-errors")
    headers = {**user.headers, "content-type": "application/json"}
    response = await rest.post("/v1/profiles", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    [(field, description)] = field_violations(response.json()).items()
    assert field == ""
    assert description.startswith(NOT_JSON if where else "the request body is not UTF-8 text"), description
    if where:
        assert description.endswith(where), description
    assert_clean(response.text, "my-secret-value")
    assert (await rest.get("/v1/profiles/me", headers=user.headers)).status_code == 404  # nothing stored


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"query": "py", "limit": "abc"}, {"limit": "expected an integer"}),
        ({"q": "py"}, {"q": UNKNOWN_PARAMETER}),
        ({"query": "py", "lmit": "3"}, {"lmit": f'{UNKNOWN_PARAMETER}; did you mean "limit"?'}),
        ({"query": "py", "limit": "x", "page": "2"}, {"limit": "expected an integer", "page": UNKNOWN_PARAMETER}),
        ({"query": "py", "category": "NOPE"}, None),
    ],
    ids=["wrong_type", "unknown", "misspelt", "two_at_once", "unknown_enum_value"],
)
async def test_a_bad_query_parameter_is_named_as_the_request_named_it(
    mesh: Mesh, rest, query: dict, expected: dict | None
) -> None:
    answer = await rest_call(rest, "GET", SEARCH, token=mesh.token(), params=query)
    assert answer.status == 400, answer
    found = field_violations(answer.body)
    if expected is None:
        assert list(found) == ["category"]
        assert found["category"].startswith('unknown value "NOPE"; expected one of SKILL_CATEGORY_'), found
    else:
        assert found == expected, found
    assert all(name in answer.message for name in found), answer.message
    assert_clean(str(answer.body))


async def test_good_query_parameters_pass_in_either_spelling(mesh: Mesh, rest) -> None:
    token = mesh.token()
    engineering = {"query": "py", "limit": "2", "category": "SKILL_CATEGORY_ENGINEERING"}
    for query in ({"query": "py", "limit": "2"}, engineering):
        answer = await rest_call(rest, "GET", SEARCH, token=token, params=query)
        assert answer.status == 200, answer
        assert len(answer.body["skills"]) <= 2
    params = {"page_size": "5", "unreadOnly": "1"}  # a proto name, a boolean as the transcoder reads it
    listed = await rest_call(rest, "GET", "/v1/notifications", token=token, params=params)
    assert listed.status == 200, listed


async def test_a_services_violations_name_json_fields_for_rest_and_proto_fields_for_grpc(
    mesh: Mesh, rest, edge_channel
) -> None:
    """The same refusals from the profile and identity services: camelCase through the REST edge,
    snake_case over gRPC (through the edge too, even when the caller sends the edge's REST mark)."""
    user = new_user(mesh, "rest-names")
    created = await rest_call(rest, "POST", "/v1/profiles", token=user.token, json={"displayName": ""})
    assert created.status == 400, created
    assert list(field_violations(created.body)) == ["profile.displayName"]
    assert "profile.displayName" in created.message and "display_name" not in created.message
    changed = await rest_call(
        rest, "POST", "/v1/auth/password:change", token=user.token, json={"currentPassword": "", "newPassword": "x"}
    )
    assert changed.status == 400, changed
    assert set(field_violations(changed.body)) == {"currentPassword", "newPassword"}

    metadata = (("authorization", f"Bearer {user.token}"), ("x-envoy-original-method", "POST"))
    profiles = profile_pb2_grpc.ProfileServiceStub(edge_channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await profiles.CreateProfile(
            profile_pb2.CreateProfileRequest(profile=profile_pb2.Profile(display_name="")), metadata=metadata
        )
    assert _grpc_fields(raised.value) == ["profile.display_name"]
    identity = identity_pb2_grpc.IdentityServiceStub(edge_channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await identity.ChangePassword(identity_pb2.ChangePasswordRequest(new_password="x"), metadata=metadata)
    assert set(_grpc_fields(raised.value)) == {"current_password", "new_password"}


def _grpc_fields(error: grpc.aio.AioRpcError) -> list[str]:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    status = rpc_status.from_call(error)
    fields = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    return fields
