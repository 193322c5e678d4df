"""Control characters in free text (services/common/text.py): a NUL in a headline once reached
Postgres, which refuses it, and answered 500. Every text field a user writes answers 400 naming
the field instead, over REST through the edge, and nothing is stored."""

from __future__ import annotations

import uuid

import pytest

from deploy.local.ephemeral import Mesh
from tests.users import User, new_user, rest_violations

BAD = ["\u0000", "\u0007", "\u001b[31m", "\u007f", "\u009b"]


async def _profile(rest, user: User, **fields) -> dict:
    response = await rest.post("/v1/profiles", json={"displayName": "Ctrl Carla", **fields}, headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["profile"]


def _refused(response, field: str) -> None:
    assert response.status_code == 400, response.text
    assert rest_violations(response.json()) == [field], response.text
    assert "must not contain control characters" in response.json()["message"]


@pytest.mark.parametrize("bad", BAD)
async def test_profile_text_with_control_characters_is_refused(mesh: Mesh, rest, bad: str) -> None:
    user = new_user(mesh, "ctrl")
    _refused(
        await rest.post("/v1/profiles", json={"displayName": f"Ada{bad}"}, headers=user.headers),
        "profile.displayName",
    )
    profile = await _profile(rest, user, headline="fine", summary="two\nlines\tand a tab")
    pid = profile["profileId"]
    for field, json_name in [("headline", "headline"), ("summary", "summary"), ("looking_for", "lookingFor")]:
        answer = await rest.patch(
            f"/v1/profiles/{pid}", params={"updateMask": field}, json={json_name: f"x{bad}y"}, headers=user.headers
        )
        _refused(answer, f"profile.{json_name}")
    city = await rest.patch(
        f"/v1/profiles/{pid}",
        params={"updateMask": "location"},
        json={"location": {"city": f"Ber{bad}lin"}},
        headers=user.headers,
    )
    _refused(city, "profile.location.city")
    _refused(
        await rest.post(
            f"/v1/profiles/{pid}/skills", json={"name": f"Py{bad}thon", "proficiency": 3}, headers=user.headers
        ),
        "name",
    )
    stored = (await rest.get("/v1/profiles/me", headers=user.headers)).json()["profile"]
    assert (stored["headline"], stored["summary"], stored.get("skills", [])) == ("fine", "two\nlines\tand a tab", [])


@pytest.mark.parametrize("bad", BAD[:2])
async def test_an_endorsement_note_with_control_characters_is_refused(mesh: Mesh, rest, bad: str) -> None:
    owner, endorser = new_user(mesh, "ctrl-owner"), new_user(mesh, "ctrl-endorser")
    pid = (await _profile(rest, owner, visibility="VISIBILITY_PUBLIC"))["profileId"]
    skill = await rest.post(f"/v1/profiles/{pid}/skills", json={"name": "Go", "proficiency": 3}, headers=owner.headers)
    body = {"skillId": skill.json()["skill"]["skillId"], "note": f"great{bad}"}
    answer = await rest.post(f"/v1/profiles/{pid}/endorsements", json=body, headers=endorser.headers)
    _refused(answer, "note")


@pytest.mark.parametrize("bad", BAD[:2])
async def test_a_sign_up_display_name_with_control_characters_is_refused(rest, bad: str) -> None:
    body = {
        "email": f"ctrl-{uuid.uuid4().hex[:10]}@example.com",
        "password": "violet-kettle-harbour",
        "displayName": f"Ada{bad}",
    }
    _refused(await rest.post("/v1/auth/signup", json=body), "displayName")
    answer = await rest.post("/v1/auth/signup", json={**body, "displayName": "Ada"})
    assert answer.status_code == 200, answer.text  # nothing was stored the first time
