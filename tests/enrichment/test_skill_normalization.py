"""NormalizeSkill's embedding path: a name the taxonomy does not know by name, alias or typo
maps to the skill nearest in meaning when confident, else stays custom."""

from __future__ import annotations

import pytest

from deploy.local.ephemeral import Mesh
from openhr.enrichment.v1 import enrichment_pb2
from tests.enrichment.skill_examples import CUSTOM, MEANT
from tests.enrichment.support import service_metadata
from tests.users import new_user
from tests.waiting import eventually


@pytest.fixture(scope="module", autouse=True)
async def taxonomy_vectors_loaded(mesh: Mesh, internal) -> None:
    """The taxonomy's vectors load after the service is SERVING (seconds, the first time)."""
    request = enrichment_pb2.BatchNormalizeSkillsRequest(names=["kubernetes clusters"])
    caller = service_metadata(mesh)

    async def loaded() -> bool:
        return not (await internal.BatchNormalizeSkills(request, metadata=caller, timeout=30)).results[0].custom

    await eventually(loaded, within=120, message="the taxonomy's vectors to load")


async def test_rest_normalize_maps_a_paraphrase_and_keeps_a_hobby_custom(mesh: Mesh, rest) -> None:
    user = new_user(mesh)
    # Spaces as %20: Envoy's transcoder keeps a "+" in a query string as it is.
    mapped = (await rest.get("/v1/skills:normalize?name=kubernetes%20clusters", headers=user.headers)).json()
    assert mapped["name"] == "Kubernetes" and mapped["taxonomyId"] == "kubernetes"
    assert 0.75 <= mapped["confidence"] < 1  # by meaning: below an exact match's 1.0
    assert not mapped.get("custom", False)
    hobby = (await rest.get("/v1/skills:normalize?name=underwater%20basket%20weaving", headers=user.headers)).json()
    assert (hobby["name"], hobby["taxonomyId"], hobby["custom"]) == ("underwater basket weaving", "", True)


async def test_labelled_names_map_right_or_stay_custom(mesh: Mesh, internal) -> None:
    """On the labelled set (all-MiniLM-L6-v2 at 0.75): no name maps to a skill it does not
    mean, no hobby becomes a skill, and most paraphrases are recognised (26 of 37 measured)."""
    names = list(MEANT) + CUSTOM
    response = await internal.BatchNormalizeSkills(
        enrichment_pb2.BatchNormalizeSkillsRequest(names=names), metadata=service_metadata(mesh), timeout=30
    )
    results = dict(zip(names, response.results, strict=True))
    wrong = {name: results[name].taxonomy_id for name in MEANT if results[name].taxonomy_id not in ("", MEANT[name])}
    assert wrong == {}
    assert [name for name in CUSTOM if not results[name].custom] == []
    recognised = [name for name, meant in MEANT.items() if results[name].taxonomy_id == meant]
    assert len(recognised) >= 24, sorted(set(MEANT) - set(recognised))


async def test_a_skill_added_to_a_profile_is_normalized_by_meaning(mesh: Mesh, rest) -> None:
    user = new_user(mesh)
    profile = (await rest.post("/v1/profiles", json={"displayName": "Sam"}, headers=user.headers)).json()["profile"]
    skills = f"/v1/profiles/{profile['profileId']}/skills"
    added = await rest.post(skills, json={"name": "postgres databases", "proficiency": 3}, headers=user.headers)
    skill = added.json()["skill"]
    assert (skill["name"], skill["taxonomyId"]) == ("PostgreSQL", "postgresql")
