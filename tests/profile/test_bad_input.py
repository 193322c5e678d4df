"""Bad input to the profile service: every case gets a clear error, with the right HTTP code
over REST through Envoy and the matching gRPC status straight to the service, naming the bad
field, and changes nothing in the database.

"Nothing changed" is checked twice: the caller's rows in profile.profiles, profile.skills,
profile.endorsements and the outbox events that mention them are read as superuser before
and after (whole rows, so a bumped version or updated_at counts as a change), and the profile
is read back over the API."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field

import asyncpg
import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf import field_mask_pb2, json_format
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from jwt.algorithms import OKPAlgorithm

from deploy.local.ephemeral import AUDIENCE, ISSUER, Mesh
from openhr.profile.v1 import profile_pb2, profile_pb2_grpc
from tests.connections import connect
from tests.users import User, json_name, new_user, rest_violations

# The limits, as stated in services/profile/validation.py and the proto comments.
MAX_DISPLAY_NAME = 80
MAX_HEADLINE = 140
MAX_SUMMARY = 4000
MAX_SKILL_NAME = 60
MAX_NOTE = 280

RPC_TIMEOUT = 10
# What an error body must never carry: stack traces, driver names (any case) and SQL.
LEAKS_ANY_CASE = ("traceback", 'file "', "sqlalchemy", "asyncpg", "psycopg", "pgvector")
LEAKS_SQL = ("SELECT", "INSERT INTO", "UPDATE profile", "FROM profile.", "WHERE ")
# HTTP status -> google.rpc.Code of the JSON error body.
HTTP_CODE = {400: 3, 401: 16, 403: 7, 404: 5}
GRPC_FOR_HTTP = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
}
REASON_FOR_HTTP = {
    400: "ERROR_REASON_INVALID_FIELD",
    401: "ERROR_REASON_UNAUTHENTICATED",
    403: "ERROR_REASON_FORBIDDEN",
    404: "ERROR_REASON_NOT_FOUND",
}


# --- users, calls and the database ------------------------------------------------------------


def camel(path: str) -> str:
    """A field path as the REST mapping spells it (display_name -> displayName)."""
    head, *rest = path.split("_")
    return head + "".join(part.title() for part in rest)


VALID = {"displayName": "Valid Name", "role": "ROLE_FOUNDER", "timezone": "Europe/Berlin"}


async def create_profile(rest, user: User, **fields) -> dict:
    response = await rest.post("/v1/profiles", json={**VALID, **fields}, headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["profile"]


async def add_skill(rest, user: User, profile_id: str, name: str = "Python", proficiency: int = 4) -> dict:
    response = await rest.post(
        f"/v1/profiles/{profile_id}/skills", json={"name": name, "proficiency": proficiency}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    return response.json()["skill"]


async def my_profile(rest, user: User) -> dict | None:
    response = await rest.get("/v1/profiles/me", headers=user.headers)
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return response.json()["profile"]


@pytest.fixture
def stub(profile_channel) -> profile_pb2_grpc.ProfileServiceStub:
    return profile_pb2_grpc.ProfileServiceStub(profile_channel)


async def snapshot(db: asyncpg.Pool, *users: User) -> dict[str, list]:
    """Every row of these users (whole rows) and the ids of outbox events that mention them."""
    ids = [uuid.UUID(u.user_id) for u in users]
    async with db.acquire() as conn:
        profiles = await conn.fetch(
            "SELECT * FROM profile.profiles WHERE user_id = ANY($1::uuid[]) ORDER BY profile_id", ids
        )
        skills = await conn.fetch("SELECT * FROM profile.skills WHERE user_id = ANY($1::uuid[]) ORDER BY skill_id", ids)
        endorsements = await conn.fetch(
            "SELECT * FROM profile.endorsements"
            " WHERE owner_user_id = ANY($1::uuid[]) OR endorser_user_id = ANY($1::uuid[]) ORDER BY endorsement_id",
            ids,
        )
        # Events carry the user id as a proto string field: the envelope's user_id and the
        # profile's inside ProfileChanged.
        outbox = await conn.fetch(
            "SELECT event_id FROM profile.outbox"
            " WHERE EXISTS (SELECT 1 FROM unnest($1::text[]) u WHERE position(convert_to(u, 'UTF8') IN payload) > 0)"
            " ORDER BY id",
            [u.user_id for u in users],
        )
    return {
        "profiles": [dict(r) for r in profiles],
        "skills": [dict(r) for r in skills],
        "endorsements": [dict(r) for r in endorsements],
        "outbox": [str(r["event_id"]) for r in outbox],
    }


def counts(state: dict[str, list]) -> dict[str, int]:
    return {table: len(rows) for table, rows in state.items()}


# --- error assertions -------------------------------------------------------------------------


def assert_no_leak(text: str) -> None:
    for leak in LEAKS_ANY_CASE:
        assert leak not in text.lower(), f"{leak!r} in {text!r}"
    for leak in LEAKS_SQL:
        assert leak not in text, f"{leak!r} in {text!r}"


def rest_reasons(body: dict) -> list[str]:
    return [d["reason"] for d in body.get("details", []) if d.get("@type", "").endswith("/google.rpc.ErrorInfo")]


def assert_rest_error(response, status: int, *, violation: str | None = None, mentions: str | None = None) -> dict:
    """`violation`: a field our service names in BadRequest; `mentions`: text the message must
    hold. Both by proto names: REST callers read them as JSON names (camelCase)."""
    violation, mentions = (json_name(text) if text is not None else None for text in (violation, mentions))
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    assert_no_leak(response.text)
    body = response.json()
    assert body["code"] == HTTP_CODE[status], body
    assert body["message"], body
    if body["details"]:  # answered by our service: ErrorInfo always
        assert rest_reasons(body) == [REASON_FOR_HTTP[status]], body
    if violation is not None:
        assert violation in rest_violations(body), body
        assert violation in body["message"], body
    if mentions is not None:
        assert mentions in body["message"], body
    return body


async def grpc_error(call) -> tuple[grpc.aio.AioRpcError, status_pb2.Status | None]:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value, rpc_status.from_call(raised.value)


def grpc_violations(status: status_pb2.Status) -> list[str]:
    found = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.extend(v.field for v in bad.field_violations)
    return found


def grpc_reasons(status: status_pb2.Status) -> list[str]:
    found = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            assert info.domain == "openhr.dev"
            found.append(info.reason)
    return found


async def assert_grpc_error(
    call, http_status: int, *, violation: str | None = None, edge: bool = False
) -> grpc.aio.AioRpcError:
    """`edge`: the call went through Envoy, which may answer it itself (jwt_authn's 401),
    without google.rpc details like its other answers."""
    error, status = await grpc_error(call)
    assert error.code() == GRPC_FOR_HTTP[http_status], (error.code(), error.details())
    assert_no_leak(error.details() or "")
    if edge and status is None:
        return error
    assert status is not None, "no google.rpc.Status in grpc-status-details-bin"
    assert_no_leak(str(status))
    assert grpc_reasons(status) == [REASON_FOR_HTTP[http_status]], status
    if violation is not None:
        assert violation in grpc_violations(status), status
        assert violation in error.details()
    return error


# --- profile fields ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldCase:
    id: str
    json: dict  # Profile fields as REST JSON; the gRPC request is parsed from the same JSON
    violation: str  # the field named in BadRequest
    mask: str  # the update_mask path that covers it

    def proto(self, **extra) -> profile_pb2.Profile:
        return json_format.ParseDict({**self.json, **extra}, profile_pb2.Profile())


FIELD_CASES = [
    FieldCase("display_name_81", {"displayName": "x" * (MAX_DISPLAY_NAME + 1)}, "profile.display_name", "display_name"),
    FieldCase("display_name_blank", {"displayName": "   "}, "profile.display_name", "display_name"),
    FieldCase("headline_141", {"headline": "h" * (MAX_HEADLINE + 1)}, "profile.headline", "headline"),
    FieldCase("summary_4001", {"summary": "s" * (MAX_SUMMARY + 1)}, "profile.summary", "summary"),
    FieldCase("role_99", {"role": 99}, "profile.role", "role"),
    FieldCase("visibility_42", {"visibility": 42}, "profile.visibility", "visibility"),
    FieldCase("timezone_mars", {"timezone": "Mars/Olympus"}, "profile.timezone", "timezone"),
    FieldCase("country_lowercase", {"location": {"countryCode": "de"}}, "profile.location.country_code", "location"),
    FieldCase("country_alpha3", {"location": {"countryCode": "DEU"}}, "profile.location.country_code", "location"),
    FieldCase("country_digit", {"location": {"countryCode": "D1"}}, "profile.location.country_code", "location"),
    FieldCase(
        "website_javascript",
        {"links": {"websiteUrl": "javascript:alert(1)"}},
        "profile.links.website_url",
        "links",
    ),
    FieldCase("linkedin_no_host", {"links": {"linkedinUrl": "https://"}}, "profile.links.linkedin_url", "links"),
]


@pytest.mark.parametrize("case", FIELD_CASES, ids=lambda c: c.id)
async def test_bad_field_on_create(mesh: Mesh, rest, stub, db, case: FieldCase) -> None:
    user = new_user(mesh, "bad-input")
    before = await snapshot(db, user)
    assert counts(before) == {"profiles": 0, "skills": 0, "endorsements": 0, "outbox": 0}

    response = await rest.post("/v1/profiles", json={**VALID, **case.json}, headers=user.headers)
    assert_rest_error(response, 400, violation=case.violation)

    request = profile_pb2.CreateProfileRequest(
        profile=json_format.ParseDict({**VALID, **case.json}, profile_pb2.Profile())
    )
    await assert_grpc_error(
        stub.CreateProfile(request, metadata=user.metadata, timeout=RPC_TIMEOUT), 400, violation=case.violation
    )

    assert await snapshot(db, user) == before
    assert await my_profile(rest, user) is None


@pytest.mark.parametrize("case", FIELD_CASES, ids=lambda c: c.id)
async def test_bad_field_on_update(mesh: Mesh, rest, stub, db, case: FieldCase) -> None:
    user = new_user(mesh, "bad-input")
    profile = await create_profile(rest, user)
    before = await snapshot(db, user)
    assert counts(before) == {"profiles": 1, "skills": 0, "endorsements": 0, "outbox": 1}

    response = await rest.patch(
        f"/v1/profiles/{profile['profileId']}",
        params={"updateMask": camel(case.mask)},
        json=case.json,
        headers=user.headers,
    )
    assert_rest_error(response, 400, violation=case.violation)

    request = profile_pb2.UpdateProfileRequest(
        profile=case.proto(profileId=profile["profileId"]), update_mask=field_mask_pb2.FieldMask(paths=[case.mask])
    )
    await assert_grpc_error(
        stub.UpdateProfile(request, metadata=user.metadata, timeout=RPC_TIMEOUT), 400, violation=case.violation
    )

    assert await snapshot(db, user) == before
    assert await my_profile(rest, user) == profile


async def test_role_name_out_of_range_is_rejected_by_the_transcoder(mesh: Mesh, rest, db) -> None:
    """Over REST an unknown enum name never reaches the service: Envoy answers 400 naming the field."""
    newcomer, owner = new_user(mesh, "bad-input"), new_user(mesh, "bad-input")
    profile = await create_profile(rest, owner)
    before = await snapshot(db, newcomer, owner)

    created = await rest.post("/v1/profiles", json={**VALID, "role": "ROLE_NOPE"}, headers=newcomer.headers)
    assert_rest_error(created, 400, mentions="profile.role")
    updated = await rest.patch(
        f"/v1/profiles/{profile['profileId']}",
        params={"updateMask": "role"},
        json={"role": "ROLE_NOPE"},
        headers=owner.headers,
    )
    assert_rest_error(updated, 400, mentions="profile.role")

    assert await snapshot(db, newcomer, owner) == before
    assert await my_profile(rest, newcomer) is None
    assert await my_profile(rest, owner) == profile


async def test_empty_timezone_is_allowed(mesh: Mesh, rest, stub) -> None:
    over_rest, over_grpc = new_user(mesh, "bad-input"), new_user(mesh, "bad-input")
    created = await create_profile(rest, over_rest, timezone="")
    assert created["timezone"] == ""

    response = await stub.CreateProfile(
        profile_pb2.CreateProfileRequest(profile=profile_pb2.Profile(display_name="Tz Less", timezone="")),
        metadata=over_grpc.metadata,
        timeout=RPC_TIMEOUT,
    )
    assert response.profile.timezone == ""

    # And a set time zone can be cleared again.
    zoned = await stub.UpdateProfile(
        profile_pb2.UpdateProfileRequest(
            profile=profile_pb2.Profile(profile_id=response.profile.profile_id, timezone="Asia/Tokyo"),
            update_mask=field_mask_pb2.FieldMask(paths=["timezone"]),
        ),
        metadata=over_grpc.metadata,
        timeout=RPC_TIMEOUT,
    )
    assert zoned.profile.timezone == "Asia/Tokyo"
    cleared = await rest.patch(
        f"/v1/profiles/{response.profile.profile_id}",
        params={"updateMask": "timezone"},
        json={"timezone": ""},
        headers=over_grpc.headers,
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["profile"]["timezone"] == ""
    assert cleared.json()["profile"]["version"] == "3"


async def test_limits_are_inclusive(mesh: Mesh, rest) -> None:
    """The one-over cases fail because of the limit, not the value: exactly at it is fine."""
    owner, endorser = new_user(mesh, "bad-input"), new_user(mesh, "bad-input")
    profile = await create_profile(
        rest,
        owner,
        displayName="d" * MAX_DISPLAY_NAME,
        headline="h" * MAX_HEADLINE,
        summary="s" * MAX_SUMMARY,
        location={"countryCode": "DE"},
        links={"websiteUrl": "https://example.com/me"},
    )
    assert len(profile["displayName"]) == MAX_DISPLAY_NAME
    await create_profile(rest, endorser)
    await connect(rest, owner.headers, endorser.headers)  # only matched users endorse each other
    skill = await add_skill(rest, owner, profile["profileId"], name="k" * MAX_SKILL_NAME, proficiency=5)
    assert len(skill["name"]) == MAX_SKILL_NAME
    low = await add_skill(rest, owner, profile["profileId"], name="Go", proficiency=1)
    assert low["proficiency"] == 1
    endorsed = await rest.post(
        f"/v1/profiles/{profile['profileId']}/endorsements",
        json={"skillId": skill["skillId"], "note": "n" * MAX_NOTE},
        headers=endorser.headers,
    )
    assert endorsed.status_code == 200, endorsed.text


# --- skills and endorsements ------------------------------------------------------------------


SKILL_CASES = [
    pytest.param("Python", 0, "proficiency", id="proficiency_0"),
    pytest.param("Python", 6, "proficiency", id="proficiency_6"),
    pytest.param("Python", -1, "proficiency", id="proficiency_negative"),
    pytest.param("s" * (MAX_SKILL_NAME + 1), 3, "name", id="name_61"),
    pytest.param("   ", 3, "name", id="name_blank"),
]


@pytest.mark.parametrize(("name", "proficiency", "violation"), SKILL_CASES)
async def test_bad_skill(mesh: Mesh, rest, stub, db, name: str, proficiency: int, violation: str) -> None:
    user = new_user(mesh, "bad-input")
    profile = await create_profile(rest, user)
    await add_skill(rest, user, profile["profileId"], name="Rust", proficiency=3)
    profile = await my_profile(rest, user)
    before = await snapshot(db, user)
    assert counts(before) == {"profiles": 1, "skills": 1, "endorsements": 0, "outbox": 2}

    response = await rest.post(
        f"/v1/profiles/{profile['profileId']}/skills",
        json={"name": name, "proficiency": proficiency},
        headers=user.headers,
    )
    assert_rest_error(response, 400, violation=violation)

    request = profile_pb2.AddSkillRequest(profile_id=profile["profileId"], name=name, proficiency=proficiency)
    await assert_grpc_error(
        stub.AddSkill(request, metadata=user.metadata, timeout=RPC_TIMEOUT), 400, violation=violation
    )

    assert await snapshot(db, user) == before
    assert await my_profile(rest, user) == profile


async def test_endorsement_note_too_long(mesh: Mesh, rest, stub, db) -> None:
    owner, endorser = new_user(mesh, "bad-input"), new_user(mesh, "bad-input")
    profile = await create_profile(rest, owner)
    await create_profile(rest, endorser)
    await connect(rest, owner.headers, endorser.headers)  # only matched users endorse each other
    skill = await add_skill(rest, owner, profile["profileId"])
    before = await snapshot(db, owner, endorser)
    note = "n" * (MAX_NOTE + 1)

    response = await rest.post(
        f"/v1/profiles/{profile['profileId']}/endorsements",
        json={"skillId": skill["skillId"], "note": note},
        headers=endorser.headers,
    )
    assert_rest_error(response, 400, violation="note")

    request = profile_pb2.CreateEndorsementRequest(
        profile_id=profile["profileId"], skill_id=skill["skillId"], note=note
    )
    await assert_grpc_error(
        stub.CreateEndorsement(request, metadata=endorser.metadata, timeout=RPC_TIMEOUT), 400, violation="note"
    )

    assert await snapshot(db, owner, endorser) == before
    listed = await rest.get(f"/v1/profiles/{profile['profileId']}/endorsements", headers=owner.headers)
    assert listed.json()["endorsements"] == []


# --- ids, masks, missing and foreign profiles -------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request, over REST and over gRPC, with `{pid}` and `{sid}` filled in per test."""

    id: str
    method: str
    path: str
    rpc: str
    request: dict  # proto fields of the gRPC request (snake_case), values may hold {pid} / {sid}
    params: dict = field(default_factory=dict)
    body: dict | None = None

    def fill(self, value, pid: str, sid: str):
        if isinstance(value, str):
            return value.format(pid=pid, sid=sid)
        if isinstance(value, dict):
            return {k: self.fill(v, pid, sid) for k, v in value.items()}
        return value

    async def rest(self, rest, user: User, pid: str, sid: str):
        return await rest.request(
            self.method,
            self.fill(self.path, pid, sid),
            params=self.params,
            json=self.fill(self.body, pid, sid) if self.body is not None else None,
            headers=user.headers,
        )

    def grpc(self, stub, user: User, pid: str, sid: str):
        method = getattr(stub, self.rpc)
        request_type = {
            "GetProfile": profile_pb2.GetProfileRequest,
            "UpdateProfile": profile_pb2.UpdateProfileRequest,
            "ListSkills": profile_pb2.ListSkillsRequest,
            "AddSkill": profile_pb2.AddSkillRequest,
            "RemoveSkill": profile_pb2.RemoveSkillRequest,
            "ListEndorsements": profile_pb2.ListEndorsementsRequest,
            "CreateEndorsement": profile_pb2.CreateEndorsementRequest,
        }[self.rpc]
        request = json_format.ParseDict(self.fill(self.request, pid, sid), request_type())
        return method(request, metadata=user.metadata, timeout=RPC_TIMEOUT)


BAD_ID = "not-a-uuid"
INVALID_ID_CALLS = [
    (Call("get_profile", "GET", "/v1/profiles/{pid}", "GetProfile", {"profile_id": "{pid}"}), "profile_id"),
    (
        Call(
            "update_profile",
            "PATCH",
            "/v1/profiles/{pid}",
            "UpdateProfile",
            {"profile": {"profile_id": "{pid}", "headline": "changed"}, "update_mask": "headline"},
            params={"updateMask": "headline"},
            body={"headline": "changed"},
        ),
        "profile.profile_id",
    ),
    (Call("list_skills", "GET", "/v1/profiles/{pid}/skills", "ListSkills", {"profile_id": "{pid}"}), "profile_id"),
    (
        Call(
            "add_skill",
            "POST",
            "/v1/profiles/{pid}/skills",
            "AddSkill",
            {"profile_id": "{pid}", "name": "Go", "proficiency": 3},
            body={"name": "Go", "proficiency": 3},
        ),
        "profile_id",
    ),
    (
        Call(
            "list_endorsements",
            "GET",
            "/v1/profiles/{pid}/endorsements",
            "ListEndorsements",
            {"profile_id": "{pid}"},
        ),
        "profile_id",
    ),
]
INVALID_SKILL_ID_CALLS = [
    (
        Call(
            "remove_skill",
            "DELETE",
            "/v1/profiles/{pid}/skills/{sid}",
            "RemoveSkill",
            {"profile_id": "{pid}", "skill_id": "{sid}"},
        ),
        "skill_id",
    ),
    (
        Call(
            "create_endorsement",
            "POST",
            "/v1/profiles/{pid}/endorsements",
            "CreateEndorsement",
            {"profile_id": "{pid}", "skill_id": "{sid}"},
            body={"skillId": "{sid}"},
        ),
        "skill_id",
    ),
]


@pytest.mark.parametrize(("call", "violation"), INVALID_ID_CALLS, ids=lambda v: getattr(v, "id", v))
async def test_invalid_profile_id(mesh: Mesh, rest, stub, db, call: Call, violation: str) -> None:
    user = new_user(mesh, "bad-input")
    profile = await create_profile(rest, user)
    skill = await add_skill(rest, user, profile["profileId"])
    profile = await my_profile(rest, user)
    before = await snapshot(db, user)

    assert_rest_error(await call.rest(rest, user, BAD_ID, skill["skillId"]), 400, violation=violation)
    await assert_grpc_error(call.grpc(stub, user, BAD_ID, skill["skillId"]), 400, violation=violation)

    assert await snapshot(db, user) == before
    assert await my_profile(rest, user) == profile


@pytest.mark.parametrize(("call", "violation"), INVALID_SKILL_ID_CALLS, ids=lambda v: getattr(v, "id", v))
async def test_invalid_skill_id(mesh: Mesh, rest, stub, db, call: Call, violation: str) -> None:
    owner, caller = new_user(mesh, "bad-input"), new_user(mesh, "bad-input")
    profile = await create_profile(rest, owner)
    await add_skill(rest, owner, profile["profileId"])
    await create_profile(rest, caller)
    profile = await my_profile(rest, owner)
    # Removing is the owner's call, endorsing someone else's.
    user = owner if call.rpc == "RemoveSkill" else caller
    before = await snapshot(db, owner, caller)

    assert_rest_error(await call.rest(rest, user, profile["profileId"], BAD_ID), 400, violation=violation)
    await assert_grpc_error(call.grpc(stub, user, profile["profileId"], BAD_ID), 400, violation=violation)

    assert await snapshot(db, owner, caller) == before
    assert await my_profile(rest, owner) == profile


UPDATE_MASKS = [
    pytest.param([], id="empty"),
    pytest.param(["bogus"], id="unknown"),
    pytest.param(["headline", "bogus"], id="known_and_unknown"),
    pytest.param(["location.altitude"], id="unknown_subpath"),
    pytest.param(["version"], id="output_only_version"),
    pytest.param(["user_id"], id="output_only_user_id"),
    pytest.param(["profile_id"], id="identifier"),
    pytest.param(["completeness"], id="output_only_completeness"),
    pytest.param(["skills"], id="output_only_skills"),
    pytest.param(["headline", "create_time"], id="mixed_with_output_only"),
]


@pytest.mark.parametrize("paths", UPDATE_MASKS)
async def test_bad_update_mask(mesh: Mesh, rest, stub, db, paths: list[str]) -> None:
    user = new_user(mesh, "bad-input")
    profile = await create_profile(rest, user)
    before = await snapshot(db, user)
    changes = {"headline": "changed", "version": "99", "completeness": 100}

    params = {"updateMask": ",".join(camel(p) for p in paths)} if paths else {}
    response = await rest.patch(
        f"/v1/profiles/{profile['profileId']}", params=params, json=changes, headers=user.headers
    )
    assert_rest_error(response, 400, violation="update_mask")

    request = profile_pb2.UpdateProfileRequest(
        profile=profile_pb2.Profile(profile_id=profile["profileId"], headline="changed", version=99, completeness=100),
        update_mask=field_mask_pb2.FieldMask(paths=paths),
    )
    await assert_grpc_error(
        stub.UpdateProfile(request, metadata=user.metadata, timeout=RPC_TIMEOUT), 400, violation="update_mask"
    )

    assert await snapshot(db, user) == before
    assert await my_profile(rest, user) == profile


MISSING_CALLS = [
    Call("get_profile", "GET", "/v1/profiles/{pid}", "GetProfile", {"profile_id": "{pid}"}),
    Call(
        "update_profile",
        "PATCH",
        "/v1/profiles/{pid}",
        "UpdateProfile",
        {"profile": {"profile_id": "{pid}", "headline": "x"}, "update_mask": "headline"},
        params={"updateMask": "headline"},
        body={"headline": "x"},
    ),
    Call("list_skills", "GET", "/v1/profiles/{pid}/skills", "ListSkills", {"profile_id": "{pid}"}),
    Call(
        "add_skill",
        "POST",
        "/v1/profiles/{pid}/skills",
        "AddSkill",
        {"profile_id": "{pid}", "name": "Go", "proficiency": 3},
        body={"name": "Go", "proficiency": 3},
    ),
    Call(
        "create_endorsement",
        "POST",
        "/v1/profiles/{pid}/endorsements",
        "CreateEndorsement",
        {"profile_id": "{pid}", "skill_id": "{sid}"},
        body={"skillId": "{sid}"},
    ),
]


@pytest.mark.parametrize("call", MISSING_CALLS, ids=lambda c: c.id)
async def test_unknown_profile_is_not_found(mesh: Mesh, rest, stub, db, call: Call) -> None:
    user = new_user(mesh, "bad-input")
    profile = await create_profile(rest, user)
    before = await snapshot(db, user)
    missing, missing_skill = str(uuid.uuid4()), str(uuid.uuid4())

    body = assert_rest_error(await call.rest(rest, user, missing, missing_skill), 404)
    assert "not found" in body["message"]
    await assert_grpc_error(call.grpc(stub, user, missing, missing_skill), 404)

    assert await snapshot(db, user) == before
    assert await my_profile(rest, user) == profile


FOREIGN_CALLS = [
    Call(
        "update_profile",
        "PATCH",
        "/v1/profiles/{pid}",
        "UpdateProfile",
        {
            "profile": {"profile_id": "{pid}", "headline": "pwned", "visibility": "VISIBILITY_PRIVATE"},
            "update_mask": "headline,visibility",
        },
        params={"updateMask": "headline,visibility"},
        body={"headline": "pwned", "visibility": "VISIBILITY_PRIVATE"},
    ),
    Call(
        "add_skill",
        "POST",
        "/v1/profiles/{pid}/skills",
        "AddSkill",
        {"profile_id": "{pid}", "name": "Go", "proficiency": 1},
        body={"name": "Go", "proficiency": 1},
    ),
    Call(
        "remove_skill",
        "DELETE",
        "/v1/profiles/{pid}/skills/{sid}",
        "RemoveSkill",
        {"profile_id": "{pid}", "skill_id": "{sid}"},
    ),
]


@pytest.mark.parametrize("call", FOREIGN_CALLS, ids=lambda c: c.id)
async def test_changing_someone_elses_public_profile_is_forbidden(mesh: Mesh, rest, stub, db, call: Call) -> None:
    owner, intruder = new_user(mesh, "bad-input"), new_user(mesh, "bad-input")
    profile = await create_profile(rest, owner, visibility="VISIBILITY_PUBLIC", headline="Mine")
    skill = await add_skill(rest, owner, profile["profileId"])
    await create_profile(rest, intruder)
    profile = await my_profile(rest, owner)
    # The intruder can read it: the refusal is about ownership, not visibility.
    seen = await rest.get(f"/v1/profiles/{profile['profileId']}", headers=intruder.headers)
    assert seen.status_code == 200, seen.text
    before = await snapshot(db, owner, intruder)

    assert_rest_error(await call.rest(rest, intruder, profile["profileId"], skill["skillId"]), 403)
    await assert_grpc_error(call.grpc(stub, intruder, profile["profileId"], skill["skillId"]), 403)

    assert await snapshot(db, owner, intruder) == before
    assert await my_profile(rest, owner) == profile
    assert profile["headline"] == "Mine"


# --- what only the REST edge can get wrong ----------------------------------------------------


async def test_unknown_query_parameter(mesh: Mesh, rest, db) -> None:
    user, newcomer = new_user(mesh, "bad-input"), new_user(mesh, "bad-input")
    profile = await create_profile(rest, user)
    before = await snapshot(db, user, newcomer)
    pid = profile["profileId"]

    requests = [
        ("GET", f"/v1/profiles/{pid}", {"bogus": "1"}, None, user),
        ("GET", "/v1/profiles/me", {"bogus": "1"}, None, user),
        ("GET", f"/v1/profiles/{pid}/skills", {"bogus": "1"}, None, user),
        ("PATCH", f"/v1/profiles/{pid}", {"updateMask": "headline", "bogus": "1"}, {"headline": "changed"}, user),
        ("POST", f"/v1/profiles/{pid}/skills", {"bogus": "1"}, {"name": "Go", "proficiency": 3}, user),
        ("POST", "/v1/profiles", {"bogus": "1"}, VALID, newcomer),
    ]
    for method, path, params, body, caller in requests:
        response = await rest.request(method, path, params=params, json=body, headers=caller.headers)
        assert_rest_error(response, 400, mentions="bogus")

    assert await snapshot(db, user, newcomer) == before
    assert await my_profile(rest, user) == profile
    assert await my_profile(rest, newcomer) is None


MALFORMED_BODIES = [
    pytest.param(b'{"displayName": ', None, id="truncated"),
    pytest.param(b"not json", None, id="not_json"),
    pytest.param(b'{"displayName": "A" "headline": "B"}', None, id="missing_comma"),
    pytest.param(b"[]", None, id="array_not_object"),
    pytest.param(b'{"displayName": 5}', "profile.display_name", id="number_for_string"),
    pytest.param(b'{"displayName": "A", "yearsExperience": "many"}', "profile.years_experience", id="string_for_int"),
    pytest.param(b'{"displayName": "A", "location": "Berlin"}', "profile.location", id="string_for_message"),
]


@pytest.mark.parametrize(("body", "mentions"), MALFORMED_BODIES)
async def test_malformed_json_create(mesh: Mesh, rest, db, body: bytes, mentions: str | None) -> None:
    user = new_user(mesh, "bad-input")
    before = await snapshot(db, user)
    response = await rest.post(
        "/v1/profiles", content=body, headers={**user.headers, "content-type": "application/json"}
    )
    assert_rest_error(response, 400, mentions=mentions)
    assert await snapshot(db, user) == before
    assert await my_profile(rest, user) is None


async def test_malformed_json_update_and_add_skill(mesh: Mesh, rest, db) -> None:
    user = new_user(mesh, "bad-input")
    profile = await create_profile(rest, user)
    before = await snapshot(db, user)
    headers = {**user.headers, "content-type": "application/json"}

    patched = await rest.patch(
        f"/v1/profiles/{profile['profileId']}",
        params={"updateMask": "headline"},
        content=b'{"headline": ',
        headers=headers,
    )
    assert_rest_error(patched, 400)
    added = await rest.post(
        f"/v1/profiles/{profile['profileId']}/skills", content=b'{"name": "Go", "proficiency": }', headers=headers
    )
    assert_rest_error(added, 400)
    wrong_type = await rest.post(
        f"/v1/profiles/{profile['profileId']}/skills",
        content=b'{"name": "Go", "proficiency": "expert"}',
        headers=headers,
    )
    assert_rest_error(wrong_type, 400, mentions="proficiency")

    assert await snapshot(db, user) == before
    assert await my_profile(rest, user) == profile


# --- tokens -----------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return jwt.utils.base64url_encode(data).decode()


def _jwks(mesh: Mesh) -> dict:
    return json.loads((mesh.key_dir / "jwks.json").read_text())["keys"][0]


def _claims(user: User, **overrides) -> dict:
    now = int(time.time())
    claims = {"sub": user.user_id, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(mesh: Mesh, claims: dict, **headers) -> str:
    """Signed with the real development key: only the claims are wrong."""
    key = serialization.load_pem_private_key((mesh.key_dir / "signing-key.pem").read_bytes(), password=None)
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": _jwks(mesh)["kid"], **headers})


def _hs256(mesh: Mesh, user: User, secret: bytes) -> str:
    """An HS256 token keyed with public material. PyJWT signs it when it does not recognise the
    secret as a key; PEM and JWK secrets it refuses, so those are signed by hand."""
    claims, headers = _claims(user), {"kid": _jwks(mesh)["kid"]}
    try:
        return jwt.encode(claims, secret, algorithm="HS256", headers=headers)
    except jwt.InvalidKeyError:
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", **headers}).encode())
        payload = _b64(json.dumps(claims).encode())
        signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(signature)}"


def _public_pem(mesh: Mesh) -> bytes:
    public = OKPAlgorithm.from_jwk(json.dumps(_jwks(mesh)))
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _unsigned(mesh: Mesh, user: User, alg: str) -> str:
    """`alg: none` in another spelling, with the real kid (PyJWT only writes "none")."""
    header = _b64(json.dumps({"alg": alg, "typ": "JWT", "kid": _jwks(mesh)["kid"]}).encode())
    return f"{header}.{_b64(json.dumps(_claims(user)).encode())}."


def _flip_signature(token: str) -> str:
    header, payload, signature = token.split(".")
    i = len(signature) // 2  # a middle character: all six of its bits are signature bits
    flipped = "B" if signature[i] == "A" else "A"
    return f"{header}.{payload}.{signature[:i]}{flipped}{signature[i + 1 :]}"


def _swap_subject(token: str, subject: str) -> str:
    """Keeps header and signature, rewrites the payload's subject."""
    header, payload, signature = token.split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["sub"] = subject
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


def _foreign_key(mesh: Mesh, user: User, *, same_kid: bool) -> str:
    kid = _jwks(mesh)["kid"] if same_kid else "attacker-key"
    return jwt.encode(_claims(user), Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": kid})


# Each builds an authorization header value claiming to be `victim` (None: no header at all).
ATTACKS = {
    "missing": lambda mesh, victim, other: None,
    "empty_bearer": lambda mesh, victim, other: "Bearer",
    "basic_scheme": lambda mesh, victim, other: "Basic " + _b64(b"user:password"),
    "garbage": lambda mesh, victim, other: "Bearer not.a.jwt",
    "expired": lambda mesh, victim, other: "Bearer " + mesh.token(victim.email, ttl_seconds=60, now=time.time() - 3600),
    "tampered_signature": lambda mesh, victim, other: "Bearer " + _flip_signature(victim.token),
    "stripped_signature": lambda mesh, victim, other: "Bearer " + victim.token.rsplit(".", 1)[0] + ".",
    "tampered_subject": lambda mesh, victim, other: "Bearer " + _swap_subject(other.token, victim.user_id),
    "alg_none": lambda mesh, victim, other: "Bearer " + jwt.encode(_claims(victim), None, algorithm="none"),
    "alg_None_with_kid": lambda mesh, victim, other: "Bearer " + _unsigned(mesh, victim, "None"),
    "hs256_jwks_file": lambda mesh, victim, other: (
        "Bearer " + _hs256(mesh, victim, (mesh.key_dir / "jwks.json").read_bytes())
    ),
    "hs256_jwk_x": lambda mesh, victim, other: "Bearer " + _hs256(mesh, victim, _jwks(mesh)["x"].encode()),
    "hs256_raw_public_key": lambda mesh, victim, other: (
        "Bearer " + _hs256(mesh, victim, jwt.utils.base64url_decode(_jwks(mesh)["x"]))
    ),
    "hs256_public_pem": lambda mesh, victim, other: "Bearer " + _hs256(mesh, victim, _public_pem(mesh)),
    "foreign_key_same_kid": lambda mesh, victim, other: "Bearer " + _foreign_key(mesh, victim, same_kid=True),
    "foreign_key_unknown_kid": lambda mesh, victim, other: "Bearer " + _foreign_key(mesh, victim, same_kid=False),
    "wrong_audience": lambda mesh, victim, other: "Bearer " + _signed(mesh, _claims(victim, aud="someone-else")),
    "wrong_issuer": lambda mesh, victim, other: "Bearer " + _signed(mesh, _claims(victim, iss="https://evil.example")),
    "no_expiry": lambda mesh, victim, other: "Bearer " + _signed(mesh, _claims(victim, exp=None)),
    "subject_not_uuid": lambda mesh, victim, other: "Bearer " + _signed(mesh, _claims(victim, sub="admin")),
}


async def test_tokens_built_like_the_attacks_but_honest_are_accepted(mesh: Mesh, rest) -> None:
    """Control: the claims and signing the attacks start from are accepted when left alone."""
    user = new_user(mesh, "bad-input")
    for token in (_signed(mesh, _claims(user)), mesh.token(user.email, ttl_seconds=60)):
        response = await rest.get("/v1/profiles/me", headers={"authorization": f"Bearer {token}"})
        assert response.status_code == 404, response.text  # authenticated; no profile yet


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_bad_token_is_unauthenticated(mesh: Mesh, rest, profile_channel, edge_channel, db, attack: str) -> None:
    victim, other = new_user(mesh, "bad-input"), new_user(mesh, "bad-input")
    profile = await create_profile(rest, victim, headline="Untouched")
    await create_profile(rest, other)
    before = await snapshot(db, victim, other)
    authorization = ATTACKS[attack](mesh, victim, other)
    headers = {"authorization": authorization} if authorization is not None else {}
    metadata = (("authorization", authorization),) if authorization is not None else ()

    # REST through Envoy: a read, a write to the victim's profile and a create.
    reads = await rest.get("/v1/profiles/me", headers=headers)
    assert_rest_error(reads, 401)
    writes = await rest.patch(
        f"/v1/profiles/{profile['profileId']}",
        params={"updateMask": "headline"},
        json={"headline": "pwned"},
        headers=headers,
    )
    assert_rest_error(writes, 401)
    assert_rest_error(await rest.post("/v1/profiles", json=VALID, headers=headers), 401)

    # gRPC, straight to the service and through the edge.
    update = profile_pb2.UpdateProfileRequest(
        profile=profile_pb2.Profile(profile_id=profile["profileId"], headline="pwned"),
        update_mask=field_mask_pb2.FieldMask(paths=["headline"]),
    )
    for channel, edge in ((profile_channel, False), (edge_channel, True)):
        stub = profile_pb2_grpc.ProfileServiceStub(channel)
        await assert_grpc_error(
            stub.GetMyProfile(profile_pb2.GetMyProfileRequest(), metadata=metadata, timeout=RPC_TIMEOUT),
            401,
            edge=edge,
        )
        await assert_grpc_error(stub.UpdateProfile(update, metadata=metadata, timeout=RPC_TIMEOUT), 401, edge=edge)

    assert await snapshot(db, victim, other) == before
    assert await my_profile(rest, victim) == profile


@pytest.mark.parametrize("garbage", [b"\xff\xff\xff\xff", b"\x0a\x05ab", b"\x08" + b"\xff" * 11])
async def test_a_corrupt_protobuf_request_is_invalid_argument(
    mesh: Mesh, profile_channel, edge_channel, garbage
) -> None:
    """Bytes that are no GetProfileRequest once answered UNKNOWN "Exception deserializing
    request" naming DecodeError: now INVALID_ARGUMENT, naming no class, straight to the
    service and through the edge."""
    user = new_user(mesh)
    for channel in (profile_channel, edge_channel):
        call = channel.unary_unary("/openhr.profile.v1.ProfileService/GetProfile")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(garbage, metadata=user.metadata, timeout=RPC_TIMEOUT)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
        assert "Error" not in (refused.value.details() or "") and "Exception" not in (refused.value.details() or "")
