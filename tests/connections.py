"""Two users become a match the way people do: each likes the other through the matching
service (REST through Envoy). The profile service learns it from MatchCreated; matched users
see each other's full profile and may endorse each other."""

from __future__ import annotations

import httpx

from tests.waiting import eventually


async def _profile_id(rest: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await rest.get("/v1/profiles/me", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["profile"]["profileId"]


async def connect(rest: httpx.AsyncClient, a: dict[str, str], b: dict[str, str]) -> None:
    """`a` and `b` (authorization headers of users with PUBLIC or MATCHES_ONLY profiles) like
    each other; returns once the profile service shows each the other's full profile."""
    a_pid, b_pid = await _profile_id(rest, a), await _profile_id(rest, b)

    async def like(headers, profile_id) -> bool:
        # Refused until matching's read model has both profiles (from ProfileChanged events).
        response = await rest.post(f"/v1/matches/{profile_id}:like", json={}, headers=headers)
        return response.status_code == 200

    await eventually(lambda: like(a, b_pid), message="the first like")
    await eventually(lambda: like(b, a_pid), message="the like back")

    async def matched() -> bool:
        response = await rest.get(f"/v1/profiles/{b_pid}", headers=a)
        return response.json().get("view") == "PROFILE_VIEW_MATCHED"

    await eventually(matched, message="the profile service to see the match")
