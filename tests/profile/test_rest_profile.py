"""The profile service through Envoy's REST edge, as a browser or curl would use it."""

from __future__ import annotations

import uuid

from deploy.local.ephemeral import Mesh
from tests.connections import connect


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


ALICE = {
    "displayName": "Alice Example",
    "role": "ROLE_TECHNICAL_COFOUNDER",
    "headline": "Backend engineer looking for a business co-founder",
    "timezone": "Europe/Berlin",
    "location": {"city": "Berlin", "countryCode": "DE"},
    "preferences": {
        "stage": {"stages": ["STARTUP_STAGE_PRE_SEED", "STARTUP_STAGE_SEED"], "importance": "IMPORTANCE_MUST_HAVE"},
        "compensation": {"mix": "COMPENSATION_MIX_EQUITY_HEAVY", "importance": "IMPORTANCE_NICE_TO_HAVE"},
    },
}


async def test_create_get_update_profile(mesh: Mesh, rest) -> None:
    headers = bearer(mesh.token())
    created = await rest.post("/v1/profiles", json=ALICE, headers=headers)
    assert created.status_code == 200, created.text
    profile = created.json()["profile"]
    assert profile["displayName"] == "Alice Example"
    assert profile["preferences"]["stage"]["importance"] == "IMPORTANCE_MUST_HAVE"
    assert profile["version"] == "1"

    mine = (await rest.get("/v1/profiles/me", headers=headers)).json()["profile"]
    assert mine["profileId"] == profile["profileId"]

    updated = await rest.patch(
        f"/v1/profiles/{profile['profileId']}",
        params={"updateMask": "headline,yearsExperience"},
        json={"headline": "Now with a prototype", "yearsExperience": 9, "summary": "ignored: not in the mask"},
        headers=headers,
    )
    assert updated.status_code == 200, updated.text
    body = updated.json()["profile"]
    assert body["headline"] == "Now with a prototype"
    assert body["yearsExperience"] == 9
    assert body["summary"] == ""
    assert body["version"] == "2"


async def test_completeness_is_the_share_of_a_match_card_filled_in(mesh: Mesh, rest) -> None:
    """The weights of services/profile/validation.py, recomputed on every change, skills too."""
    bare = await rest.post("/v1/profiles", json={"displayName": "Bare"}, headers=bearer(mesh.token()))
    assert bare.json()["profile"]["completeness"] == 10  # the name only

    headers = bearer(mesh.token())
    profile = (await rest.post("/v1/profiles", json=ALICE, headers=headers)).json()["profile"]
    # role 10, name 10, headline 10, location 5, timezone 10, preferences 10
    assert profile["completeness"] == 55
    base = f"/v1/profiles/{profile['profileId']}"
    rest_of_it = {
        "summary": "Ten years of backend work: payments, ledgers and the boring parts that keep money safe.",
        "yearsExperience": 10,
        "lookingFor": "A business co-founder who loves selling to banks",
        "links": {"githubUsername": "alice-example"},
    }
    updated = await rest.patch(
        base, params={"updateMask": "summary,yearsExperience,lookingFor,links"}, json=rest_of_it, headers=headers
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["profile"]["completeness"] == 90  # + summary 15, experience 5, looking for 10, links 5

    async def completeness() -> int:
        return (await rest.get("/v1/profiles/me", headers=headers)).json()["profile"]["completeness"]

    skills = []
    for name in ("Python", "PostgreSQL", "Kubernetes"):
        added = await rest.post(f"{base}/skills", json={"name": name, "proficiency": 4}, headers=headers)
        assert added.status_code == 200, added.text
        skills.append(added.json()["skill"]["skillId"])
        assert await completeness() == (100 if len(skills) == 3 else 90)  # three skills: + 10
    assert (await rest.delete(f"{base}/skills/{skills[0]}", headers=headers)).status_code == 200
    assert await completeness() == 90


async def test_skill_is_normalized_by_the_taxonomy(mesh: Mesh, rest) -> None:
    headers = bearer(mesh.token())
    profile = (await rest.post("/v1/profiles", json=ALICE, headers=headers)).json()["profile"]
    added = await rest.post(
        f"/v1/profiles/{profile['profileId']}/skills", json={"name": "k8s", "proficiency": 4}, headers=headers
    )
    assert added.status_code == 200, added.text
    skill = added.json()["skill"]
    assert (skill["name"], skill["taxonomyId"], skill["custom"]) == ("Kubernetes", "kubernetes", False)

    custom = (
        await rest.post(
            f"/v1/profiles/{profile['profileId']}/skills",
            json={"name": "  Underwater   basket weaving ", "proficiency": 2},
            headers=headers,
        )
    ).json()["skill"]
    assert (custom["name"], custom["taxonomyId"], custom["custom"]) == ("Underwater basket weaving", "", True)

    listed = (await rest.get(f"/v1/profiles/{profile['profileId']}/skills", headers=headers)).json()["skills"]
    assert {s["name"] for s in listed} == {"Kubernetes", "Underwater basket weaving"}

    removed = await rest.delete(f"/v1/profiles/{profile['profileId']}/skills/{skill['skillId']}", headers=headers)
    assert removed.status_code == 200
    listed = (await rest.get(f"/v1/profiles/{profile['profileId']}/skills", headers=headers)).json()["skills"]
    assert [s["name"] for s in listed] == ["Underwater basket weaving"]


async def test_endorsement_once_and_never_of_oneself(mesh: Mesh, rest) -> None:
    owner, endorser = bearer(mesh.token()), bearer(mesh.token())
    profile = (await rest.post("/v1/profiles", json=ALICE, headers=owner)).json()["profile"]
    await rest.post("/v1/profiles", json={**ALICE, "displayName": "Bob"}, headers=endorser)
    await connect(rest, owner, endorser)  # only matched users endorse each other
    skill = (
        await rest.post(
            f"/v1/profiles/{profile['profileId']}/skills", json={"name": "Python", "proficiency": 5}, headers=owner
        )
    ).json()["skill"]
    path = f"/v1/profiles/{profile['profileId']}/endorsements"

    first = await rest.post(path, json={"skillId": skill["skillId"], "note": "Shipped with her"}, headers=endorser)
    assert first.status_code == 200, first.text
    assert first.json()["endorsement"]["endorserDisplayName"] == "Bob"
    again = await rest.post(path, json={"skillId": skill["skillId"]}, headers=endorser)
    assert again.status_code == 409
    self_endorse = await rest.post(path, json={"skillId": skill["skillId"]}, headers=owner)
    assert self_endorse.status_code == 403

    listed = (await rest.get(path, headers=owner)).json()["endorsements"]
    assert len(listed) == 1
    skills = (await rest.get(f"/v1/profiles/{profile['profileId']}/skills", headers=owner)).json()["skills"]
    assert skills[0]["endorsementCount"] == 1


async def test_create_is_idempotent_by_request_id(mesh: Mesh, rest) -> None:
    headers = bearer(mesh.token())
    request_id = str(uuid.uuid4())
    first = await rest.post("/v1/profiles", json=ALICE, params={"requestId": request_id}, headers=headers)
    retry = await rest.post("/v1/profiles", json=ALICE, params={"requestId": request_id}, headers=headers)
    assert first.status_code == retry.status_code == 200
    assert first.json()["profile"]["profileId"] == retry.json()["profile"]["profileId"]
    other = await rest.post("/v1/profiles", json=ALICE, params={"requestId": str(uuid.uuid4())}, headers=headers)
    assert other.status_code == 409
