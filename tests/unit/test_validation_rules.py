"""The REST body validator's rules (edge/validation/rules.py): path templates -> matchers, the
binding a REST request is served by, what a body must parse into, and the field a
protobuf ParseError names. Plus the servicer's answers to ext_proc messages, without Envoy."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ext_proc
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, json_format
from google.protobuf.descriptor_pb2 import FieldDescriptorProto

from edge.envoy.render import render
from edge.validation import api
from edge.validation.app import edge_services
from edge.validation.rules import (
    NO_BODY,
    NOT_A_PARAMETER,
    NOT_JSON,
    NOT_UTF8,
    PATH_BOUND,
    UNKNOWN_FIELD,
    UNKNOWN_PARAMETER,
    BodyRule,
    FieldViolation,
    Rules,
    build_rules,
    compile_template,
    violation_from_parse_error,
)
from services.common.field_paths import json_path, proto_path
from services.common.settings import REPO_ROOT
from services.common.surface import PUBLIC_SERVICES

DESCRIPTOR = Path(os.environ.get("OPENHR_DESCRIPTOR") or REPO_ROOT / "gen" / "openhr.binpb")
PROFILE = "/openhr.profile.v1.ProfileService"


@pytest.fixture(scope="module")
def rules() -> Rules:
    if not DESCRIPTOR.exists():
        subprocess.run([str(REPO_ROOT / "node_modules" / ".bin" / "buf"), "build", "-o", str(DESCRIPTOR)], check=True)
    return Rules.from_descriptor_set(DESCRIPTOR, edge_services())


def rpc_of(rules: Rules, method: str, path: str) -> str | None:
    rule = rules.match(method, path)
    return rule.rpc if rule else None


# --------------------------------------------------------------------------- path templates


def test_variable_is_one_segment() -> None:
    template = compile_template("/v1/profiles/{profile_id}")
    assert template.matches("/v1/profiles/8f17a5ab-6478-4aca-81c0-a6c8104d7db5")
    assert template.matches("/v1/profiles/me")
    assert not template.matches("/v1/profiles/p1/skills")
    assert not template.matches("/v1/profiles/")
    assert not template.matches("/v1/profiles")
    assert template.variables == (("profile_id",),)


def test_dotted_variable_binds_a_nested_field() -> None:
    template = compile_template("/v1/profiles/{profile.profile_id}")
    assert template.matches("/v1/profiles/p1")
    assert template.variables == (("profile", "profile_id"),)


def test_verb_is_literal() -> None:
    like = compile_template("/v1/matches/{profile_id}:like")
    assert like.matches("/v1/matches/p1:like")
    assert not like.matches("/v1/matches/p1:pass")
    assert not like.matches("/v1/matches/p1")
    assert not like.matches("/v1/matches/p1:like/x")
    assert compile_template("/v1/skills:search").matches("/v1/skills:search")
    assert not compile_template("/v1/skills:search").matches("/v1/skills:normalize")


def test_literals_are_escaped() -> None:
    jwks = compile_template("/.well-known/jwks.json")
    assert jwks.matches("/.well-known/jwks.json")
    assert not jwks.matches("/Xwell-known/jwksXjson")


def test_variable_with_pattern_and_wildcards() -> None:
    template = compile_template("/v1/{name=projects/*/docs/**}:publish")
    assert template.matches("/v1/projects/p1/docs/a/b/c:publish")
    assert not template.matches("/v1/projects/p1/x/a:publish")
    assert template.variables == (("name",),)
    assert compile_template("/v1/*/items").matches("/v1/anything/items")


def test_literal_segments_rank_before_variables() -> None:
    me, any_profile = compile_template("/v1/profiles/me"), compile_template("/v1/profiles/{profile_id}")
    assert me.rank < any_profile.rank


@pytest.mark.parametrize("bad", ["v1/profiles", "/v1/{profile_id"])
def test_malformed_template_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        compile_template(bad)


# --------------------------------------------------------------------------- matching


def test_rules_cover_exactly_the_public_services(rules: Rules) -> None:
    services = {rule.rpc.split("/")[1] for rule in rules.rules}
    public = {service for listed in PUBLIC_SERVICES.values() for service in listed}
    assert services <= public
    assert "openhr.profile.v1.ProfileService" in services
    assert not any("Internal" in rule.rpc or "UserDataService" in rule.rpc for rule in rules.rules)


def test_literal_path_wins_over_a_variable(rules: Rules) -> None:
    assert rpc_of(rules, "GET", "/v1/profiles/me") == f"{PROFILE}/GetMyProfile"
    assert rpc_of(rules, "GET", "/v1/profiles/8f17a5ab") == f"{PROFILE}/GetProfile"
    assert rpc_of(rules, "get", "/v1/profiles/me?x=1") == f"{PROFILE}/GetMyProfile"


def test_verbs_pick_their_method(rules: Rules) -> None:
    assert rpc_of(rules, "POST", "/v1/matches/p1:like") == "/openhr.matching.v1.MatchingService/LikeProfile"
    assert rpc_of(rules, "POST", "/v1/matches/p1:pass") == "/openhr.matching.v1.MatchingService/PassProfile"
    assert rpc_of(rules, "POST", "/v1/matches/p1:nope") is None


def test_http_method_counts(rules: Rules) -> None:
    assert rpc_of(rules, "POST", "/v1/profiles") == f"{PROFILE}/CreateProfile"
    assert rpc_of(rules, "PATCH", "/v1/profiles/p1") == f"{PROFILE}/UpdateProfile"
    assert rpc_of(rules, "PUT", "/v1/profiles/p1") is None
    assert rpc_of(rules, "POST", "/v1/nope") is None


def test_the_transcoders_choice_of_rpc_decides(rules: Rules) -> None:
    # What Envoy sends when the transcoder already rewrote the request to its gRPC path.
    rule = rules.match("POST", "/openhr.profile.v1.ProfileService/CreateProfile", rpc=f"{PROFILE}/CreateProfile")
    assert rule is not None and rule.body == "profile"
    assert rules.match("POST", "/v1/profiles", rpc="/openhr.profile.v1.ProfileInternalService/X").rpc == (
        f"{PROFILE}/CreateProfile"
    )


def test_body_mapping(rules: Rules) -> None:
    create = rules.match("POST", "/v1/profiles")
    assert create.body == "profile" and create.body_message.full_name == "openhr.profile.v1.Profile"
    add = rules.match("POST", "/v1/profiles/p1/skills")
    assert add.body == "*" and add.body_message.full_name == "openhr.profile.v1.AddSkillRequest"
    assert add.path.variables == (("profile_id",),)
    remove = rules.match("DELETE", "/v1/profiles/p1/skills/s1")
    assert remove.body == "" and remove.body_message is None


# --------------------------------------------------------------------------- bodies


def check(rules: Rules, method: str, path: str, body: object) -> list[FieldViolation] | None:
    rule = rules.match(method, path)
    assert rule is not None
    return rules.check(rule, body if isinstance(body, (bytes, str)) else json.dumps(body))


def test_valid_bodies_pass(rules: Rules) -> None:
    profile = {
        "displayName": "Alice",
        "role": "ROLE_TECHNICAL_COFOUNDER",
        "years_experience": 7,  # proto names are valid JSON keys too
        "location": {"city": "Berlin", "countryCode": "DE"},
        "preferences": {"stage": {"stages": ["STARTUP_STAGE_SEED"], "importance": "IMPORTANCE_MUST_HAVE"}},
        "headline": None,
    }
    assert check(rules, "POST", "/v1/profiles", profile) == []
    assert check(rules, "PATCH", "/v1/profiles/p1", {"headline": "x", "yearsExperience": "9"}) == []
    assert check(rules, "POST", "/v1/profiles/p1/skills", {"name": "Go", "proficiency": 3}) == []
    assert check(rules, "POST", "/v1/profiles", {}) == []


def test_unknown_top_level_field(rules: Rules) -> None:
    assert check(rules, "POST", "/v1/profiles", {"displayName": "A", "bogus": 1}) == [
        FieldViolation("profile.bogus", UNKNOWN_FIELD)
    ]
    # body "*": the request message is the body
    assert check(rules, "POST", "/v1/profiles/p1/skills", {"name": "Go", "bogus": 1}) == [
        FieldViolation("bogus", UNKNOWN_FIELD)
    ]


def test_typo_gets_a_suggestion(rules: Rules) -> None:
    [violation] = check(rules, "POST", "/v1/profiles", {"displayname": "A"})
    assert violation.field == "profile.displayname"
    assert violation.description.startswith(UNKNOWN_FIELD) and '"displayName"' in violation.description


def test_unknown_nested_field_names_its_path(rules: Rules) -> None:
    [violation] = check(rules, "POST", "/v1/profiles", {"preferences": {"stage": {"stagez": []}}})
    assert violation.field == "profile.preferences.stage.stagez"
    [violation] = check(rules, "PATCH", "/v1/profiles/p1", {"skills": [{"name": "Go"}, {"nme": "x"}]})
    assert violation.field == "profile.skills[1].nme"


def test_unknown_enum_name(rules: Rules) -> None:
    [violation] = check(rules, "POST", "/v1/profiles", {"role": "ROLE_NOPE"})
    assert violation.field == "profile.role" and '"ROLE_NOPE"' in violation.description
    [violation] = check(rules, "POST", "/v1/profiles", {"preferences": {"stage": {"stages": ["STAGE_NOPE"]}}})
    assert violation.field == "profile.preferences.stage.stages[0]"


@pytest.mark.parametrize(
    ("body", "field", "description"),
    [
        ({"displayName": 5}, "profile.display_name", "expected a JSON string"),
        ({"yearsExperience": "many"}, "profile.years_experience", "expected an integer"),
        ({"yearsExperience": 1.5}, "profile.years_experience", "expected an integer"),
        ({"location": "Berlin"}, "profile.location", "expected a JSON object"),
        ({"location": ["Berlin"]}, "profile.location", "expected a JSON object"),
        ({"skills": {"name": "Go"}}, "profile.skills", "expected a JSON array"),
        ({"skills": ["Go"]}, "profile.skills[0]", "expected a JSON object"),
        ({"links": {"githubUsername": 5}}, "profile.links.github_username", "expected a JSON string"),
        ({"location": {"latitude": "north"}}, "profile.location.latitude", "expected a number"),
    ],
)
def test_wrong_types_name_the_field(rules: Rules, body: dict, field: str, description: str) -> None:
    assert check(rules, "POST", "/v1/profiles", body) == [FieldViolation(field, description)]


def test_body_must_be_an_object(rules: Rules) -> None:
    assert check(rules, "POST", "/v1/profiles", []) == [
        FieldViolation("profile", "the request body must be a JSON object")
    ]
    assert check(rules, "POST", "/v1/profiles/p1/skills", '"Go"') == [
        FieldViolation("", "the request body must be a JSON object")
    ]


@pytest.mark.parametrize(
    ("body", "description"),
    [
        (b"{bad", "expecting property name enclosed in double quotes at line 1 column 2"),
        (b"   ", "expecting value at line 1 column 4"),
        (b"not json", "expecting value at line 1 column 1"),
        (b'{"displayName": "A"\n "x": 1}', "expecting ',' delimiter at line 2 column 2"),
    ],
)
def test_not_json_says_where_it_breaks_and_never_echoes_the_body(rules: Rules, body: bytes, description: str) -> None:
    assert check(rules, "POST", "/v1/profiles", body) == [FieldViolation("", f"{NOT_JSON}: {description}")]


def test_not_utf8_is_not_json(rules: Rules) -> None:
    assert check(rules, "POST", "/v1/profiles", b"\xff\xfe{") == [FieldViolation("", NOT_UTF8)]


def query(rules: Rules, method: str, path: str, text: str) -> list[FieldViolation]:
    return rules.check_query(rules.match(method, path), text)


def test_query_parameters_name_fields_of_the_request(rules: Rules) -> None:
    search = "/v1/skills:search"
    assert query(rules, "GET", search, "query=py&limit=5&category=SKILL_CATEGORY_ENGINEERING") == []
    assert query(rules, "GET", search, "query=py&limit=2&category=1") == []  # enum numbers, like the transcoder
    assert query(rules, "GET", search, "limit=abc") == [FieldViolation("limit", "expected an integer")]
    assert query(rules, "GET", search, "limit=1.5") == [FieldViolation("limit", "expected an integer")]
    assert query(rules, "GET", search, "limit=99999999999") == [FieldViolation("limit", "out of range")]
    assert query(rules, "GET", search, "q=py") == [FieldViolation("q", UNKNOWN_PARAMETER)]
    did_you_mean = f'{UNKNOWN_PARAMETER}; did you mean "query"?'
    assert query(rules, "GET", search, "quer=py") == [FieldViolation("quer", did_you_mean)]
    [bad] = query(rules, "GET", search, "category=NOPE")
    assert bad.field == "category" and bad.description.startswith('unknown value "NOPE"; expected one of ')
    assert "SKILL_CATEGORY_ENGINEERING" in bad.description and "openhr." not in bad.description


def test_query_parameters_by_json_or_proto_name_nested_repeated_and_boolean(rules: Rules) -> None:
    matches = "/v1/matches"
    assert query(rules, "GET", matches, "pageSize=5&page_size=5&remoteOnly=true&remote_only=0") == []
    assert query(rules, "GET", matches, "roles=ROLE_ADVISOR&roles=ROLE_EARLY_ENGINEER&minScore=0.5") == []
    assert query(rules, "GET", matches, "remoteOnly=maybe") == [FieldViolation("remoteOnly", "expected true or false")]
    assert query(rules, "GET", matches, "minScore=high") == [FieldViolation("minScore", "expected a number")]
    [bad] = query(rules, "GET", matches, "roles=ROLE_ADVISOR&roles=ROLE_NOPE")
    assert bad.field == "roles" and bad.description.startswith('unknown value "ROLE_NOPE"')
    # Two bad parameters: two violations, in the order given.
    assert [v.field for v in query(rules, "GET", matches, "x=1&pageSize=z")] == ["x", "pageSize"]
    # A nested message is set field by field (dotted), never whole.
    assert query(rules, "PATCH", "/v1/profiles/p1", "updateMask=headline,skills") == []
    assert query(rules, "POST", "/v1/profiles", "profile=x") == [FieldViolation("profile", NOT_A_PARAMETER)]


def test_path_bound_fields_are_not_body_fields(rules: Rules) -> None:
    assert check(rules, "POST", "/v1/profiles/p1/skills", {"profileId": "p2", "name": "Go"}) == [
        FieldViolation("profile_id", PATH_BOUND)
    ]
    assert check(rules, "POST", "/v1/matches/p1:like", {"profile_id": "p2"}) == [
        FieldViolation("profile_id", PATH_BOUND)
    ]
    # body "profile": the path binds profile.profile_id inside the body; the transcoder lets
    # the path win, and Profile has the field, so it is not an unknown field.
    assert check(rules, "PATCH", "/v1/profiles/p1", {"profileId": "p1", "headline": "x"}) == []


def test_method_without_body(rules: Rules) -> None:
    assert check(rules, "DELETE", "/v1/profiles/p1/skills/s1", {}) == []
    assert check(rules, "DELETE", "/v1/profiles/p1/skills/s1", "null") == []
    assert check(rules, "DELETE", "/v1/profiles/p1/skills/s1", {"force": True}) == [FieldViolation("force", NO_BODY)]


# --------------------------------------------------------------------------- other body shapes


def _synthetic_rules() -> Rules:
    """A service with what our contracts do not use yet: a repeated-field body, a body naming
    a sub-message, additional bindings, `{name=pattern}` and a custom method."""
    file = descriptor_pb2.FileDescriptorProto(name="test/v1/things.proto", package="test.v1", syntax="proto3")
    item = file.message_type.add(name="Item")
    item.field.add(name="title", number=1, type=FieldDescriptorProto.TYPE_STRING, json_name="title")
    request = file.message_type.add(name="SetThingRequest")
    request.field.add(name="name", number=1, type=FieldDescriptorProto.TYPE_STRING, json_name="name")
    request.field.add(
        name="tags",
        number=2,
        type=FieldDescriptorProto.TYPE_STRING,
        label=FieldDescriptorProto.LABEL_REPEATED,
        json_name="tags",
    )
    request.field.add(
        name="item", number=3, type=FieldDescriptorProto.TYPE_MESSAGE, type_name=".test.v1.Item", json_name="item"
    )
    service = file.service.add(name="ThingService")
    method = service.method.add(name="SetThing", input_type=".test.v1.SetThingRequest", output_type=".test.v1.Item")
    http = method.options.Extensions[annotations_pb2.http]
    http.put = "/v1/{name=things/*}/tags"
    http.body = "tags"
    extra = http.additional_bindings.add(post="/v1/{name=things/*}:setItem", body="item")
    extra.additional_bindings.clear()
    custom = http.additional_bindings.add(body="*")
    custom.custom.kind = "MERGE"
    custom.custom.path = "/v1/{name=things/**}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    files = descriptor_pb2.FileDescriptorSet(file=[file])
    return Rules(build_rules(files, pool, ["test.v1.ThingService"]), pool)


def test_additional_bindings_and_body_shapes() -> None:
    rules = _synthetic_rules()
    tags = rules.match("PUT", "/v1/things/t1/tags")
    assert tags.body == "tags" and tags.body_message is None
    assert rules.check(tags, '["a", "b"]') == []
    # named like the services name fields: from the request message on
    assert rules.check(tags, '"a"') == [FieldViolation("tags", "expected a JSON array")]
    assert rules.check(tags, "[1]") == [
        FieldViolation("tags", "expected a JSON string")
    ]  # no index: protobuf gives none

    item = rules.match("POST", "/v1/things/t1:setItem")
    assert item.body == "item"
    assert rules.check(item, '{"titel": "x"}') == [FieldViolation("item.titel", 'unknown field; did you mean "title"?')]

    merge = rules.match("MERGE", "/v1/things/a/b")
    assert merge.body == "*"
    assert rules.check(merge, '{"name": "x"}') == [FieldViolation("name", PATH_BOUND)]
    assert rules.check(merge, '{"tags": ["a"], "item": {"title": "t"}}') == []

    # Several bindings of one RPC: the client's method and path pick one.
    rpc = "/test.v1.ThingService/SetThing"
    assert rules.match("POST", "/v1/things/t1:setItem", rpc=rpc) is item
    assert rules.match("PUT", "/v1/things/t1/tags", rpc=rpc) is tags


def test_body_naming_no_field_fails_at_start() -> None:
    rules = _synthetic_rules()
    rule = rules.match("PUT", "/v1/things/t1/tags")
    broken = BodyRule(rule.http_method, rule.path, rule.rpc, rule.request, "nope")
    with pytest.raises(ValueError, match="nope"):
        _ = broken.body_field


def test_unknown_service_is_refused() -> None:
    files = descriptor_pb2.FileDescriptorSet()
    with pytest.raises(ValueError, match=r"test\.v1\.Missing"):
        build_rules(files, descriptor_pool.DescriptorPool(), ["test.v1.Missing"])


# --------------------------------------------------------------------------- parse errors


def _parse_error(rules: Rules, body: dict) -> str:
    message = rules.match("POST", "/v1/profiles").body_message
    from google.protobuf import message_factory

    with pytest.raises(json_format.ParseError) as raised:
        json_format.ParseDict(body, message_factory.GetMessageClass(message)(), descriptor_pool=rules.pool)
    return str(raised.value)


def test_extractor_on_what_protobuf_says(rules: Rules) -> None:
    """The messages of the installed protobuf (7.x), unknown top-level and nested fields, an
    enum name, wrong types."""
    cases = {
        "bogus": {"displayName": "A", "bogus": 1},
        "preferences.stage.stagez": {"preferences": {"stage": {"stagez": []}}},
        "skills[0].nme": {"skills": [{"nme": "x"}]},
        "role": {"role": "ROLE_NOPE"},
        "preferences.stage.stages[0]": {"preferences": {"stage": {"stages": ["NOPE"]}}},
        "yearsExperience": {"yearsExperience": "abc"},
        "location.city": {"location": {"city": 5}},
    }
    for field, body in cases.items():
        assert violation_from_parse_error(_parse_error(rules, body)).field == field, body


@pytest.mark.parametrize(
    ("text", "field", "description"),
    [
        # protobuf 4-7 style
        (
            'Message type "a.B" has no field named "x" at "B.c".\n Available Fields(except extensions): "[\'y\']"',
            "c.x",
            UNKNOWN_FIELD,
        ),
        ('Message type "a.B" has no field named "x" at "B".', "x", UNKNOWN_FIELD),
        (
            "Failed to parse c field: Invalid enum value Z for enum type a.E at B.c.",
            "c",
            'unknown value "Z" for enum a.E',  # no pool given: it cannot list the names
        ),
        ("Failed to parse n field: Couldn't parse integer: 1.5 at B.n.", "n", "expected an integer"),
        # no "at …": the chain of field names
        ("Failed to parse a field: Failed to parse b field: expected string or bytes-like object.", "a.b", None),
        # anything else: no field, the whole text
        ("something unexpected", "", "something unexpected"),
    ],
)
def test_extractor_is_tolerant(text: str, field: str, description: str | None) -> None:
    violation = violation_from_parse_error(text)
    assert violation.field == field
    if description is not None:
        assert violation.description == description


@pytest.mark.parametrize(
    ("path", "proto", "json"),
    [
        ("profile.years_experience", "profile.years_experience", "profile.yearsExperience"),
        ("profile.yearsExperience", "profile.years_experience", "profile.yearsExperience"),
        (
            "profile.skills[3].endorsementCount",
            "profile.skills[3].endorsement_count",
            "profile.skills[3].endorsementCount",
        ),
        ("profile.preferences.stage.stagez", "profile.preferences.stage.stagez", "profile.preferences.stage.stagez"),
        ("request_id", "request_id", "requestId"),
        ("bogus.deeper_name", "bogus.deeper_name", "bogus.deeper_name"),  # unknown: kept as written
        ("", "", ""),
    ],
)
def test_field_paths_in_both_spellings(rules: Rules, path: str, proto: str, json: str) -> None:
    """The one renaming of field paths: proto names for gRPC callers, JSON names for REST ones
    (the services' errors and the validator's)."""
    create = rules.match("POST", "/v1/profiles").request
    assert (proto_path(create, path), json_path(create, path)) == (proto, json)


# --------------------------------------------------------------------------- the servicer


def _body_request(body: bytes, path: str, method: str = "POST", original: tuple[str, str] | None = None):
    request = ext_proc.ProcessingRequest(request_body=ext_proc.HttpBody(body=body, end_of_stream=True))
    attributes = {api.METHOD: method, api.PATH: path}
    if original:
        attributes[api.ORIGINAL_METHOD], attributes[api.ORIGINAL_PATH] = original
    request.attributes["envoy.filters.http.ext_proc"].update(attributes)
    return request


def test_servicer_rejects_with_google_rpc_status(rules: Rules) -> None:
    servicer = api.ExternalProcessorApi(rules)
    answer = servicer.answer(
        _body_request(
            b'{"displayName": "A", "bogus": 1}',
            f"{PROFILE}/CreateProfile",
            original=("POST", "/v1/profiles?requestId=x"),
        )
    )
    immediate = answer.immediate_response
    assert immediate.status.code == 400
    assert [(h.header.key, h.header.raw_value) for h in immediate.headers.set_headers] == [
        ("content-type", b"application/json")
    ]
    body = json.loads(immediate.body)
    assert body["code"] == 3 and "profile.bogus" in body["message"]
    bad = [d for d in body["details"] if d["@type"] == "type.googleapis.com/google.rpc.BadRequest"]
    assert bad[0]["fieldViolations"][0]["field"] == "profile.bogus"
    assert bad[0]["fieldViolations"][0]["description"] == UNKNOWN_FIELD
    info = [d for d in body["details"] if d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"]
    assert info[0]["reason"] == "ERROR_REASON_INVALID_FIELD"
    # marked for local_reply_config, which then keeps the body as it is
    assert answer.dynamic_metadata["openhr.validation"]["rejected"] is True


@pytest.mark.parametrize(
    "request_",
    [
        _body_request(b'{"displayName": "A"}', f"{PROFILE}/CreateProfile", original=("POST", "/v1/profiles")),
        _body_request(b'{"displayName": "A"}', "/v1/profiles"),  # untranscoded: the REST path itself
        _body_request(b'{"bogus": 1}', "/v1/unknown"),  # no binding: the transcoder answers 404
    ],
    ids=["valid", "valid-untranscoded", "unmatched"],
)
def test_servicer_lets_through(rules: Rules, request_) -> None:
    answer = api.ExternalProcessorApi(rules).answer(request_)
    assert answer.WhichOneof("response") == "request_body"
    assert not answer.request_body.response.HasField("body_mutation")


def test_servicer_without_attributes_fails_closed(rules: Rules) -> None:
    request = ext_proc.ProcessingRequest(request_body=ext_proc.HttpBody(body=b"{}", end_of_stream=True))
    answer = api.ExternalProcessorApi(rules).answer(request)
    assert answer.immediate_response.status.code == 500
    assert json.loads(answer.immediate_response.body)["code"] == 13


def test_servicer_rejects_a_body_that_is_not_json_without_echoing_it(rules: Rules) -> None:
    answer = api.ExternalProcessorApi(rules).answer(
        _body_request(b"{secret-text", f"{PROFILE}/CreateProfile", original=("POST", "/v1/profiles"))
    )
    body = json.loads(answer.immediate_response.body)
    assert answer.immediate_response.status.code == 400 and body["code"] == 3
    assert "secret-text" not in answer.immediate_response.body.decode()
    [bad] = [d for d in body["details"] if d["@type"] == "type.googleapis.com/google.rpc.BadRequest"]
    [violation] = bad["fieldViolations"]
    assert (violation["field"], violation["description"]) == (
        "",
        f"{NOT_JSON}: expecting property name enclosed in double quotes at line 1 column 2",
    )


def _headers_request(method: str, path: str) -> ext_proc.ProcessingRequest:
    headers = [base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in ((":method", method), (":path", path))]
    return ext_proc.ProcessingRequest(
        request_headers=ext_proc.HttpHeaders(headers=base_pb2.HeaderMap(headers=headers), end_of_stream=True)
    )


def test_servicer_checks_query_strings_from_the_headers(rules: Rules) -> None:
    servicer = api.ExternalProcessorApi(rules)
    for path in ("/v1/skills:search?query=py&limit=3", "/v1/skills:search", "/v1/unknown?x=1"):
        assert servicer.answer(_headers_request("GET", path)).WhichOneof("response") == "request_headers", path
    answer = servicer.answer(_headers_request("GET", "/v1/skills:search?query=py&limit=abc&q=1"))
    assert answer.immediate_response.status.code == 400
    body = json.loads(answer.immediate_response.body)
    assert body["message"] == "invalid query string: limit: expected an integer; q: unknown query parameter"
    [bad] = [d for d in body["details"] if d["@type"] == "type.googleapis.com/google.rpc.BadRequest"]
    assert [v["field"] for v in bad["fieldViolations"]] == ["limit", "q"]
    assert answer.dynamic_metadata["openhr.validation"]["rejected"] is True


def test_servicer_continues_other_phases(rules: Rules) -> None:
    answer = api.ExternalProcessorApi(rules).answer(
        ext_proc.ProcessingRequest(response_headers=ext_proc.HttpHeaders(end_of_stream=False))
    )
    assert answer.WhichOneof("response") == "response_headers"


def test_envoy_sends_the_attributes_the_servicer_reads() -> None:
    config = yaml.safe_load(
        render(
            listen_port=1,
            admin_port=2,
            descriptor_path=str(DESCRIPTOR),
            clusters=[
                {"name": "profile", "host": "127.0.0.1", "port": 3},
                {"name": "validation", "host": "127.0.0.1", "port": 4},
            ],
        )
    )
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    [ext] = [f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.ext_proc"]
    processor = ext["typed_config"]["extension_config"]["typed_config"]
    assert tuple(processor["request_attributes"]) == api.ATTRIBUTES
    assert processor["metadata_options"]["receiving_namespaces"]["untyped"] == ["openhr.validation"]
