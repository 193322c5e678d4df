"""Smaller findings of the security probe, through the edge: an endorsement does not reveal a
private endorser, an absurd update mask is a 400 rather than a 429 quoting an internal limit,
and URLs with user-info or non-public addresses are not stored."""

from __future__ import annotations

import pytest

from deploy.local.ephemeral import Mesh
from tests.connections import connect
from tests.users import User, new_user, rest_violations


async def _profile(rest, user: User, visibility: str, **fields) -> dict:
    response = await rest.post(
        "/v1/profiles",
        json={"displayName": f"Exp {user.user_id[:6]}", "visibility": visibility, **fields},
        headers=user.headers,
    )
    assert response.status_code == 200, response.text
    return response.json()["profile"]


@pytest.mark.parametrize("visibility", ["VISIBILITY_PRIVATE", "VISIBILITY_PUBLIC"])
async def test_an_endorsement_names_its_endorser_only_to_who_may_see_them(mesh: Mesh, rest, visibility: str) -> None:
    owner, endorser, stranger = new_user(mesh, "owner"), new_user(mesh, "endorser"), new_user(mesh, "stranger")
    pid = (await _profile(rest, owner, "VISIBILITY_PUBLIC"))["profileId"]
    endorser_pid = (await _profile(rest, endorser, "VISIBILITY_PUBLIC"))["profileId"]
    await connect(rest, owner.headers, endorser.headers)  # only matched users endorse each other
    hidden = await rest.patch(
        f"/v1/profiles/{endorser_pid}",
        params={"updateMask": "visibility"},
        json={"visibility": visibility},
        headers=endorser.headers,
    )
    assert hidden.status_code == 200, hidden.text
    skill = await rest.post(
        f"/v1/profiles/{pid}/skills", json={"name": "Rust", "proficiency": 4}, headers=owner.headers
    )
    endorsed = await rest.post(
        f"/v1/profiles/{pid}/endorsements",
        json={"skillId": skill.json()["skill"]["skillId"], "note": "solid"},
        headers=endorser.headers,
    )
    assert endorsed.status_code == 200, endorsed.text
    for reader in (stranger, owner):
        listed = await rest.get(f"/v1/profiles/{pid}/endorsements", headers=reader.headers)
        (endorsement,) = listed.json()["endorsements"]
        if visibility == "VISIBILITY_PRIVATE":
            assert (endorsement["endorserUserId"], endorsement["endorserDisplayName"]) == ("", ""), endorsement
        else:
            assert endorsement["endorserUserId"] == endorser.user_id
    # The endorser sees their own name on it.
    mine = await rest.get(f"/v1/profiles/{pid}/endorsements", headers=endorser.headers)
    assert mine.json()["endorsements"][0]["endorserUserId"] == endorser.user_id


async def test_a_huge_update_mask_is_a_bad_request(mesh: Mesh, rest) -> None:
    user = new_user(mesh, "mask")
    pid = (await _profile(rest, user, "VISIBILITY_PUBLIC"))["profileId"]
    mask = ",".join(["headline"] * 3500)  # ~32 KB of query string
    answer = await rest.patch(
        f"/v1/profiles/{pid}", params={"updateMask": mask}, json={"headline": "x"}, headers=user.headers
    )
    assert answer.status_code in (400, 414), answer.text
    assert "metadata size" not in answer.json()["message"], answer.text


@pytest.mark.parametrize(
    "url",
    [
        "http://user:pass@169.254.169.254/latest/meta-data/",
        "https://admin@example.com/",
        "http://169.254.169.254/",
        "http://127.0.0.1:8080/",
        "http://[::1]/",
        "http://10.0.0.7/avatar.png",
    ],
)
async def test_urls_with_user_info_or_private_addresses_are_refused(mesh: Mesh, rest, url: str) -> None:
    user = new_user(mesh, "url")
    for field, body in [
        ("profile.avatarUrl", {"avatarUrl": url}),
        ("profile.links.websiteUrl", {"links": {"websiteUrl": url}}),
    ]:
        answer = await rest.post("/v1/profiles", json={"displayName": "Url", **body}, headers=user.headers)
        assert answer.status_code == 400, answer.text
        assert rest_violations(answer.json()) == [field]
    fine = await _profile(rest, user, "VISIBILITY_PUBLIC", avatarUrl="https://example.com/me.png")
    assert fine["avatarUrl"] == "https://example.com/me.png"
