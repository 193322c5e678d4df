"""People who say nothing of what they look for (no "looking for" text, no roles or industries
sought: enrichment gives them no seek vector) still find, and are found by, everyone: their
own offer stands in for the missing seek in the candidate search (candidates.search_queries)."""

from __future__ import annotations

import pytest

from deploy.local.ephemeral import Mesh
from openhr.matching.v1 import matching_pb2
from openhr.profile.v1 import profile_pb2 as P
from tests.matching.conftest import make_members
from tests.matching.population import Generated
from tests.matching.support import Member
from tests.waiting import eventually

# Skills nobody else in the suites has: the skill filter narrows every search to these people,
# so what is tested is which vectors the search uses, not how the population crowds the pool.
BENTHIC, SONAR = "Benthic Ecology", "Ocean Sonar Arrays"


def marine(name: str, headline: str, skill: str, looking_for: str = "", roles_sought=()) -> Generated:
    profile = P.Profile(
        role=P.ROLE_TECHNICAL_COFOUNDER,
        display_name=name,
        headline=headline,
        timezone="Europe/Lisbon",
        looking_for=looking_for,
        visibility=P.VISIBILITY_PUBLIC,
        preferences=P.Preferences(roles_sought=P.RolePreference(roles=list(roles_sought))),
    )
    return Generated("marine", profile, [(skill, "", 4)])


@pytest.fixture(scope="module")
async def marine_people(mesh: Mesh, profiles, profiles_internal, db, population) -> dict[str, Member]:
    people = {
        "quiet": marine("Quinn", "Marine biologist mapping seabed habitats", BENTHIC),
        "silent": marine("Sam", "Acoustic engineer building underwater sonar for ocean monitoring", SONAR),
        "stated": marine(
            "Stella",
            "Oceanographer running coastal research cruises",
            BENTHIC,
            looking_for="Looking for a marine biologist or an ocean engineer to build seabed monitoring with.",
            roles_sought=[P.ROLE_TECHNICAL_COFOUNDER],
        ),
    }
    members = await make_members(mesh, profiles, profiles_internal, db, list(people.values()))
    return dict(zip(people, members, strict=True))


async def seen_by(matching, me: Member) -> set[str]:
    page = await matching.ListMatches(
        matching_pb2.ListMatchesRequest(skills=[BENTHIC, SONAR], page_size=50), metadata=me.user.metadata, timeout=30
    )
    return {card.user_id for card in page.matches}


async def vectors(db, member: Member) -> tuple[bool, bool]:
    row = await db.fetchrow(
        "SELECT offer IS NOT NULL AS offer, seek IS NOT NULL AS seek FROM matching.vectors WHERE user_id = $1",
        member.user_id,
    )
    return row["offer"], row["seek"]


async def sees(stub, me: Member, them: Member) -> bool:
    return them.user_id in await seen_by(stub, me)


async def test_two_people_without_seek_vectors_find_each_other(matching, faiss_replica, marine_people, db) -> None:
    quiet, silent = marine_people["quiet"], marine_people["silent"]
    assert await vectors(db, quiet) == (True, False) and await vectors(db, silent) == (True, False)
    assert await sees(matching, quiet, silent) and await sees(matching, silent, quiet)
    # The FAISS replica (the same search behind index.py) may have started before they joined:
    # it adds them from their ProfileEmbedded events.
    await eventually(lambda: sees(faiss_replica, quiet, silent), message="the quiet one sees the silent one (FAISS)")
    assert await sees(faiss_replica, silent, quiet)


async def test_one_with_and_one_without_a_seek_vector_find_each_other(matching, marine_people, db) -> None:
    quiet, stated = marine_people["quiet"], marine_people["stated"]
    assert await vectors(db, stated) == (True, True)
    assert await sees(matching, stated, quiet) and await sees(matching, quiet, stated)
