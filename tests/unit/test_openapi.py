"""The OpenAPI document is generated from the contracts: valid OpenAPI 3.1, one operation per
REST binding of every public unary RPC, in the JSON mapping the edge speaks."""

from __future__ import annotations

import pytest
from google.api import annotations_pb2
from openapi_spec_validator import validate

from deploy.local.stack import DESCRIPTOR
from edge.openapi import generate
from edge.validation.rules import load_descriptor_set
from services.common import surface


@pytest.fixture(scope="module")
def document() -> dict:
    return generate(DESCRIPTOR)


def _bindings() -> set[tuple[str, str]]:
    """(HTTP method, gRPC path) of every google.api.http binding of the public unary RPCs,
    read straight from the descriptor set."""
    files, _ = load_descriptor_set(DESCRIPTOR)
    public = {name for names in surface.PUBLIC_SERVICES.values() for name in names}
    found = set()
    for file in files.file:
        for service in file.service:
            full = f"{file.package}.{service.name}"
            for method in service.method:
                if full not in public or method.server_streaming:
                    continue
                rule = method.options.Extensions[annotations_pb2.http]
                for binding in (rule, *rule.additional_bindings):
                    verb = binding.WhichOneof("pattern")
                    if verb:
                        found.add((verb.upper(), f"/{full}/{method.name}"))
    return found


def _operations(document: dict) -> list[tuple[str, str, dict]]:
    return [(verb, path, op) for path, item in document["paths"].items() for verb, op in item.items()]


def test_the_document_is_valid_openapi_3_1(document: dict) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_rest_binding_of_a_public_rpc_is_an_operation(document: dict) -> None:
    operations = {(verb.upper(), op["x-grpc-method"]) for verb, _, op in _operations(document)}
    assert operations == _bindings()
    assert ("GET", "/openhr.profile.v1.ProfileService/GetProfile") in operations
    assert not any("Internal" in rpc or "UserData" in rpc for _, rpc in operations)


def test_only_the_ways_to_get_a_token_need_none(document: dict) -> None:
    open_ = {op["x-grpc-method"].rsplit("/", 1)[1] for _, _, op in _operations(document) if op.get("security") == []}
    assert open_ == set(surface.IDENTITY_PUBLIC_METHODS)
    assert document["security"] == [{"bearer": []}]


def test_bodies_and_parameters_follow_the_json_mapping(document: dict) -> None:
    schemas = document["components"]["schemas"]
    profile = schemas["openhr.profile.v1.Profile"]["properties"]
    assert {"displayName", "yearsExperience", "lookingFor"} <= profile.keys()
    assert "display_name" not in profile
    assert profile["createTime"]["format"] == "date-time"
    assert "VISIBILITY_PUBLIC" in schemas["openhr.profile.v1.Visibility"]["enum"]
    assert schemas["openhr.profile.v1.Profile"]["additionalProperties"] is False

    patch = document["paths"]["/v1/profiles/{profileId}"]["patch"]
    assert [(p["name"], p["in"]) for p in patch["parameters"]] == [("profileId", "path"), ("updateMask", "query")]
    assert patch["requestBody"]["content"]["application/json"]["schema"] == {
        "allOf": [{"$ref": "#/components/schemas/openhr.profile.v1.Profile"}]
    }
    search = document["paths"]["/v1/skills:search"]["get"]
    assert {p["name"] for p in search["parameters"]} >= {"query", "limit"}
    # The path binds profile_id; the body ("*") is the rest of the request message.
    add = document["paths"]["/v1/profiles/{profileId}/skills"]["post"]["requestBody"]["content"]["application/json"]
    assert set(add["schema"]["properties"]) == {"name", "proficiency"}


def test_field_behavior_and_comments_are_carried(document: dict) -> None:
    schemas = document["components"]["schemas"]
    job = schemas["openhr.enrichment.v1.EnrichmentJob"]["properties"]
    assert job["jobId"]["readOnly"] is True
    assert schemas["openhr.enrichment.v1.CreateEnrichmentJobRequest"]["required"] == ["kind"]
    assert "ISO 3166-1" in schemas["openhr.common.v1.Location"]["properties"]["countryCode"]["description"]
    assert document["paths"]["/v1/profiles"]["post"]["summary"].startswith("Creates the caller's profile")


def test_every_error_is_a_declared_google_rpc_status(document: dict) -> None:
    """Each error status is declared (no catch-all `default`), so a client and a fuzzer know
    what to expect, and each has the google.rpc.Status body."""
    responses = document["components"]["responses"]
    for _, _, op in _operations(document):
        assert "default" not in op["responses"]
        errors = {status: answer for status, answer in op["responses"].items() if status != "200"}
        assert {"400", "401", "403", "404", "409", "429", "503"} <= errors.keys()
        for answer in errors.values():
            declared = responses[answer["$ref"].rsplit("/", 1)[1]]
            assert declared["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/google.rpc.Status"
            }
