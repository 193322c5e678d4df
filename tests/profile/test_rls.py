"""Row-level security of the profile schema, checked underneath the service and through it.

Underneath: raw asyncpg as the superuser, each transaction opened exactly as
services/common/db.py opens it (switch to the app role, set app.user_id) and always rolled
back. Through it: 20 users reading and changing each other's profiles over REST."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import pytest

from deploy.local.ephemeral import Mesh
from services.common.db import Database
from tests.connections import connect
from tests.users import User, new_user

APP_ROLE = "profile_app"
# The statement services/common/db.py runs first in every transaction.
OPEN = "SELECT set_config('role','profile_app',true), set_config('app.user_id',$1,true)"
USER_TABLES = ("profiles", "skills", "endorsements", "connections")
RLS_VIOLATION = "row-level security"


async def create_profile(rest, user: User, visibility: str, **fields) -> dict:
    body = {"displayName": f"User {user.user_id[:8]}", "visibility": visibility, **fields}
    response = await rest.post("/v1/profiles", json=body, headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["profile"]


async def add_skill(rest, user: User, profile_id: str, name: str = "Python") -> dict:
    response = await rest.post(
        f"/v1/profiles/{profile_id}/skills", json={"name": name, "proficiency": 4}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    return response.json()["skill"]


async def my_profile(rest, user: User) -> dict:
    response = await rest.get("/v1/profiles/me", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["profile"]


@asynccontextmanager
async def as_user(db: asyncpg.Pool, user_id: str) -> AsyncIterator[asyncpg.Connection]:
    """A transaction as the app role on behalf of `user_id`; always rolled back."""
    async with db.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.fetchrow(OPEN, user_id)
            assert await conn.fetchval("SELECT current_user") == APP_ROLE
            assert await conn.fetchval("SELECT current_setting('is_superuser')") == "off"
            yield conn
        finally:
            await transaction.rollback()


async def rejected_by_rls(conn: asyncpg.Connection, statement: str, *args) -> None:
    """The statement fails with an RLS violation (inside a savepoint, so the transaction goes on)."""
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match=RLS_VIOLATION):
        async with conn.transaction():
            await conn.execute(statement, *args)


async def owned_rows(db: asyncpg.Pool, *user_ids: str) -> dict[str, list[dict]]:
    """As superuser: every row of these users, whole."""
    ids = [uuid.UUID(u) for u in user_ids]
    async with db.acquire() as conn:
        return {
            "profiles": [
                dict(r)
                for r in await conn.fetch(
                    "SELECT * FROM profile.profiles WHERE user_id = ANY($1::uuid[]) ORDER BY profile_id", ids
                )
            ],
            "skills": [
                dict(r)
                for r in await conn.fetch(
                    "SELECT * FROM profile.skills WHERE user_id = ANY($1::uuid[]) ORDER BY skill_id", ids
                )
            ],
            "endorsements": [
                dict(r)
                for r in await conn.fetch(
                    "SELECT * FROM profile.endorsements WHERE owner_user_id = ANY($1::uuid[])"
                    " OR endorser_user_id = ANY($1::uuid[]) ORDER BY endorsement_id",
                    ids,
                )
            ],
            "skills_on_their_profiles": [
                dict(r)
                for r in await conn.fetch(
                    "SELECT s.* FROM profile.skills s JOIN profile.profiles p USING (profile_id)"
                    " WHERE p.user_id = ANY($1::uuid[]) ORDER BY s.skill_id",
                    ids,
                )
            ],
        }


INSERT_SKILL = (
    "INSERT INTO profile.skills (profile_id, user_id, skill_key, name, proficiency)"
    " VALUES ($1, $2, 'custom:sneaky', 'Sneaky', 5)"
)
INSERT_PROFILE = "INSERT INTO profile.profiles (user_id, display_name) VALUES ($1, 'Impostor')"


@dataclass
class Setup:
    owner: User
    other: User  # has a public profile of their own
    endorser: User
    profile: dict
    skill: dict
    before: dict

    @property
    def user_ids(self) -> tuple[str, str, str]:
        return self.owner.user_id, self.other.user_id, self.endorser.user_id


async def owner_with_skill(mesh: Mesh, rest, db, visibility: str) -> Setup:
    """The owner's profile with one skill, endorsed by a third user while it was public, then
    given `visibility`; and another user with a public profile of their own."""
    owner, other, endorser = new_user(mesh, "rls"), new_user(mesh, "rls"), new_user(mesh, "rls")
    profile = await create_profile(rest, owner, "VISIBILITY_PUBLIC", headline="Original")
    pid = profile["profileId"]
    skill = await add_skill(rest, owner, pid)
    await create_profile(rest, other, "VISIBILITY_PUBLIC")
    await create_profile(rest, endorser, "VISIBILITY_PUBLIC")
    await connect(rest, owner.headers, endorser.headers)  # only matched users endorse each other
    endorsed = await rest.post(
        f"/v1/profiles/{pid}/endorsements", json={"skillId": skill["skillId"]}, headers=endorser.headers
    )
    assert endorsed.status_code == 200, endorsed.text
    if visibility != "VISIBILITY_PUBLIC":
        hidden = await rest.patch(
            f"/v1/profiles/{pid}",
            params={"updateMask": "visibility"},
            json={"visibility": visibility},
            headers=owner.headers,
        )
        assert hidden.status_code == 200, hidden.text
    profile = await my_profile(rest, owner)
    assert profile["visibility"] == visibility
    before = await owned_rows(db, owner.user_id, other.user_id, endorser.user_id)
    assert [len(before[t]) for t in ("profiles", "skills", "endorsements")] == [3, 1, 1]
    return Setup(owner, other, endorser, profile, skill, before)


VISIBILITIES = [
    pytest.param("VISIBILITY_PRIVATE", False, id="private"),
    pytest.param("VISIBILITY_PUBLIC", True, id="public"),
    # Signed-in users read it (the service shows them the limited view).
    pytest.param("VISIBILITY_MATCHES_ONLY", True, id="matches_only_unmatched"),
]


@pytest.mark.parametrize(("visibility", "readable"), VISIBILITIES)
async def test_another_user_cannot_change_rows_and_sees_only_public_ones(
    mesh: Mesh, rest, db, visibility: str, readable: bool
) -> None:
    s = await owner_with_skill(mesh, rest, db, visibility)
    a, a_pid = s.owner.user_id, s.profile["profileId"]

    async with as_user(db, s.other.user_id) as conn:
        seen = await conn.fetch("SELECT profile_id, headline FROM profile.profiles WHERE user_id = $1", a)
        assert [(str(r["profile_id"]), r["headline"]) for r in seen] == ([(a_pid, "Original")] if readable else [])
        assert await conn.fetchval("SELECT count(*) FROM profile.profiles WHERE profile_id = $1", a_pid) == int(
            readable
        )
        skills = await conn.fetch("SELECT skill_id FROM profile.skills WHERE user_id = $1 OR profile_id = $2", a, a_pid)
        assert [str(r["skill_id"]) for r in skills] == ([s.skill["skillId"]] if readable else [])
        endorsements = await conn.fetchval("SELECT count(*) FROM profile.endorsements WHERE profile_id = $1", a_pid)
        assert endorsements == int(readable)

        assert await conn.execute("UPDATE profile.profiles SET headline = 'x' WHERE user_id = $1", a) == "UPDATE 0"
        assert await conn.execute("UPDATE profile.profiles SET version = version + 1") == "UPDATE 1"  # only its own
        assert await conn.execute("UPDATE profile.skills SET proficiency = 1 WHERE user_id = $1", a) == "UPDATE 0"
        assert await conn.execute("DELETE FROM profile.skills WHERE profile_id = $1", a_pid) == "DELETE 0"
        assert await conn.execute("DELETE FROM profile.profiles WHERE user_id = $1", a) == "DELETE 0"
        assert await conn.execute("DELETE FROM profile.endorsements WHERE profile_id = $1", a_pid) == "DELETE 0"
        await rejected_by_rls(conn, INSERT_SKILL, a_pid, a)
        await rejected_by_rls(conn, INSERT_PROFILE, a)
        await rejected_by_rls(conn, INSERT_PROFILE, str(uuid.uuid4()))

    assert await owned_rows(db, *s.user_ids) == s.before
    assert await my_profile(rest, s.owner) == s.profile


@pytest.mark.parametrize("visibility", ["VISIBILITY_PRIVATE", "VISIBILITY_PUBLIC", "VISIBILITY_MATCHES_ONLY"])
async def test_the_owner_sees_and_changes_their_rows(mesh: Mesh, rest, db, visibility: str) -> None:
    s = await owner_with_skill(mesh, rest, db, visibility)
    a, a_pid = s.owner.user_id, s.profile["profileId"]

    async with as_user(db, a) as conn:
        assert await conn.fetchval("SELECT count(*) FROM profile.profiles WHERE user_id = $1", a) == 1
        assert await conn.fetchval("SELECT count(*) FROM profile.skills WHERE profile_id = $1", a_pid) == 1
        assert await conn.fetchval("SELECT count(*) FROM profile.endorsements WHERE profile_id = $1", a_pid) == 1
        assert await conn.execute("UPDATE profile.profiles SET headline = 'x' WHERE user_id = $1", a) == "UPDATE 1"
        assert await conn.execute("UPDATE profile.skills SET proficiency = 1 WHERE user_id = $1", a) == "UPDATE 1"
        assert await conn.execute(INSERT_SKILL, a_pid, a) == "INSERT 0 1"
        # The owner may remove endorsements of their skills.
        assert await conn.execute("DELETE FROM profile.endorsements WHERE profile_id = $1", a_pid) == "DELETE 1"
        assert await conn.execute("DELETE FROM profile.skills WHERE profile_id = $1", a_pid) == "DELETE 2"
        assert await conn.execute("DELETE FROM profile.profiles WHERE user_id = $1", a) == "DELETE 1"
        # Still only their own: the other user's public profile stays out of reach.
        assert await conn.execute("UPDATE profile.profiles SET headline = 'x'") == "UPDATE 0"

    # Rolled back.
    assert await owned_rows(db, *s.user_ids) == s.before
    assert await my_profile(rest, s.owner) == s.profile


async def outcome(conn: asyncpg.Connection, statement: str, *args) -> str:
    """The command tag, or "rejected by RLS" (inside a savepoint, so the transaction goes on)."""
    try:
        async with conn.transaction():
            return await conn.execute(statement, *args)
    except asyncpg.InsufficientPrivilegeError as exc:
        assert RLS_VIOLATION in str(exc), exc
        return "rejected by RLS"


@pytest.mark.parametrize(("visibility", "readable"), VISIBILITIES)
async def test_a_skill_cannot_be_attached_to_someone_elses_profile(
    mesh: Mesh, rest, db, visibility: str, readable: bool
) -> None:
    """A skill row belongs to a user (user_id) and hangs on a profile (profile_id). If the write
    policy checks only user_id, another user can hang rows of theirs on this profile: they show
    in the owner's ListSkills and match card, and the owner cannot remove them (RemoveSkill
    answers NOT_FOUND, the delete policy wants the owner's user_id)."""
    s = await owner_with_skill(mesh, rest, db, visibility)
    a_pid = s.profile["profileId"]
    other_pid = (await my_profile(rest, s.other))["profileId"]
    other_skill = await add_skill(rest, s.other, other_pid, name="Go")
    before = await owned_rows(db, *s.user_ids)

    async with as_user(db, s.other.user_id) as conn:
        inserted = await outcome(conn, INSERT_SKILL, a_pid, s.other.user_id)
        moved = await outcome(
            conn, "UPDATE profile.skills SET profile_id = $1 WHERE skill_id = $2", a_pid, other_skill["skillId"]
        )
    assert (inserted, moved) in {("rejected by RLS", "rejected by RLS"), ("rejected by RLS", "UPDATE 0")}

    assert await owned_rows(db, *s.user_ids) == before


@pytest.mark.parametrize(
    ("visibility", "status"),
    [
        pytest.param("VISIBILITY_PRIVATE", 404, id="private"),
        pytest.param("VISIBILITY_MATCHES_ONLY", 403, id="matches_only_unmatched"),
    ],
)
async def test_an_invisible_or_unmatched_skill_cannot_be_endorsed(
    mesh: Mesh, rest, db, visibility: str, status: int
) -> None:
    """Endorsing needs the skill to be visible and its owner matched with the endorser: the API
    checks it (CreateEndorsement answers NOT_FOUND for an invisible skill, PERMISSION_DENIED
    for someone not matched), and the insert policy must too."""
    s = await owner_with_skill(mesh, rest, db, visibility)
    a_pid, skill_id = s.profile["profileId"], s.skill["skillId"]
    over_api = await rest.post(
        f"/v1/profiles/{a_pid}/endorsements", json={"skillId": skill_id, "note": "hi"}, headers=s.other.headers
    )
    assert over_api.status_code == status, over_api.text

    async with as_user(db, s.other.user_id) as conn:
        endorsed = await outcome(
            conn,
            "INSERT INTO profile.endorsements (profile_id, skill_id, owner_user_id, endorser_user_id, note)"
            " VALUES ($1, $2, $3, $4, 'sneaky')",
            a_pid,
            skill_id,
            s.owner.user_id,
            s.other.user_id,
        )
    assert endorsed == "rejected by RLS"
    assert await owned_rows(db, *s.user_ids) == s.before


async def test_app_role_is_neither_owner_nor_superuser_and_rls_is_forced(db) -> None:
    async with db.acquire() as conn:
        role = await conn.fetchrow(
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcanlogin FROM pg_roles WHERE rolname = $1", APP_ROLE
        )
        assert role is not None, f"role {APP_ROLE} missing"
        assert dict(role) == {"rolsuper": False, "rolbypassrls": False, "rolcreaterole": False, "rolcanlogin": False}
        # Nor a member of any role that is privileged or owns the tables.
        privileged = await conn.fetch(
            "SELECT rolname FROM pg_roles r WHERE (r.rolsuper OR r.rolbypassrls) AND pg_has_role($1, r.oid, 'MEMBER')",
            APP_ROLE,
        )
        assert privileged == []
        tables = await conn.fetch(
            "SELECT c.relname, pg_get_userbyid(c.relowner) AS owner, c.relrowsecurity, c.relforcerowsecurity,"
            "       pg_has_role($2, c.relowner, 'MEMBER') AS app_is_owner_member,"
            "       (SELECT count(*) FROM pg_policies p WHERE p.schemaname = 'profile' AND p.tablename = c.relname)"
            "         AS policies"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'profile' AND c.relname = ANY($1::text[]) ORDER BY c.relname",
            list(USER_TABLES),
            APP_ROLE,
        )
    assert sorted(t["relname"] for t in tables) == sorted(USER_TABLES)
    for table in tables:
        assert table["owner"] != APP_ROLE, table
        assert not table["app_is_owner_member"], table
        assert table["relrowsecurity"] and table["relforcerowsecurity"], table
        assert table["policies"] > 0, table


async def test_app_role_without_user_sees_no_private_rows(mesh: Mesh, rest, db) -> None:
    """A transaction opened with no user (background work) is nobody: public rows only, no writes."""
    s = await owner_with_skill(mesh, rest, db, "VISIBILITY_PRIVATE")
    async with as_user(db, "") as conn:
        assert await conn.fetchval("SELECT count(*) FROM profile.profiles WHERE user_id = $1", s.owner.user_id) == 0
        assert await conn.fetchval("SELECT count(*) FROM profile.profiles WHERE visibility <> 'VISIBILITY_PUBLIC'") == 0
        assert await conn.execute("UPDATE profile.profiles SET headline = 'x'") == "UPDATE 0"
        assert await conn.execute("DELETE FROM profile.skills") == "DELETE 0"
    assert await owned_rows(db, *s.user_ids) == s.before


async def test_a_pooled_connection_carries_no_role_or_caller_into_the_next_transaction(mesh: Mesh) -> None:
    """The kit's pool skips asyncpg's reset query on release (services/common/db.py): role and
    caller must end with each transaction, committed, failed in SQL or abandoned by an error."""
    database = Database(mesh.config.database_url, app_role=APP_ROLE, pool_size=1)
    caller = str(uuid.uuid4())
    try:
        async with database.transaction(caller) as tx:
            assert await tx.fetchval("SELECT current_setting('app.user_id', true)") == caller
        with pytest.raises(asyncpg.DivisionByZeroError):
            async with database.transaction(caller) as tx:
                await tx.fetchval("SELECT 1 / 0")
        with pytest.raises(LookupError):
            async with database.transaction(caller) as tx:
                raise LookupError("the handler failed")
        pool = await database.pool()
        async with pool.acquire() as connection:  # the pool's only connection, used three times
            row = await connection.fetchrow(
                "SELECT current_user AS role, coalesce(current_setting('app.user_id', true), '') AS caller"
            )
            assert row["role"] != APP_ROLE and row["caller"] == "", dict(row)
            assert not connection.is_in_transaction()
    finally:
        await database.close()


# --- through the API --------------------------------------------------------------------------

USERS = 20
BATCH = 5
# What a user not matched with the owner reads of a profile (the rest is left out).
LIMITED_KEYS = ("profileId", "userId", "displayName", "headline", "visibility", "version", "timezone", "lookingFor")


async def in_batches(coroutines: list, size: int = BATCH) -> list:
    results = []
    for start in range(0, len(coroutines), size):
        results.extend(await asyncio.gather(*coroutines[start : start + size]))
    return results


def visibility_of(i: int) -> str:
    return ("VISIBILITY_PUBLIC", "VISIBILITY_PRIVATE", "VISIBILITY_PUBLIC", "VISIBILITY_MATCHES_ONLY")[i % 4]


async def probe(i: int, me: User, created: list[dict], rest) -> list[str]:
    """User i reads every profile and tries to change every other one; returns the surprises."""
    surprises: list[str] = []
    for j, profile in enumerate(created):
        pid = profile["profileId"]
        got = await rest.get(f"/v1/profiles/{pid}", headers=me.headers)
        skills = await rest.get(f"/v1/profiles/{pid}/skills", headers=me.headers)
        if i == j:
            actual, expected = (got.status_code, skills.status_code), (200, 200)
        else:
            patched = await rest.patch(
                f"/v1/profiles/{pid}",
                params={"updateMask": "headline,visibility"},
                json={"headline": f"pwned by {i}", "visibility": "VISIBILITY_PUBLIC"},
                headers=me.headers,
            )
            actual = (got.status_code, skills.status_code, patched.status_code)
            # Signed-in users read PUBLIC and MATCHES_ONLY profiles (in the limited view).
            expected = (200, 200, 403) if profile["visibility"] != "VISIBILITY_PRIVATE" else (404, 404, 404)
            if (
                patched.status_code in (403, 404)
                and patched.json().get("code") != {403: 7, 404: 5}[patched.status_code]
            ):
                surprises.append(f"user {i} -> profile {j}: PATCH body {patched.text}")
        if actual != expected:
            surprises.append(f"user {i} -> profile {j} ({profile['visibility']}): {actual} != {expected}")
        if got.status_code == 200 and i == j and got.json()["profile"] != profile:
            surprises.append(f"user {i} -> profile {j}: read {got.json()['profile']} != {profile}")
        if got.status_code == 200 and i != j:
            read = got.json()["profile"]
            if got.json()["view"] != "PROFILE_VIEW_LIMITED" or any(read[k] != profile[k] for k in LIMITED_KEYS):
                surprises.append(f"user {i} -> profile {j}: read {got.json()} instead of the limited view")
    return surprises


async def test_twenty_users_cannot_reach_each_others_profiles(mesh: Mesh, rest, db) -> None:
    users = [new_user(mesh, "rls") for _ in range(USERS)]
    created = await in_batches(
        [create_profile(rest, u, visibility_of(i), headline=f"Headline {i}") for i, u in enumerate(users)]
    )
    assert {p["visibility"] for p in created} == {"VISIBILITY_PUBLIC", "VISIBILITY_PRIVATE", "VISIBILITY_MATCHES_ONLY"}

    surprises = await in_batches([probe(i, u, created, rest) for i, u in enumerate(users)])
    assert [s for per_user in surprises for s in per_user] == []

    # Unchanged: each owner reads back exactly what they created, version "1".
    after = await in_batches([my_profile(rest, u) for u in users])
    assert after == created
    assert {p["version"] for p in after} == {"1"}
    rows = await owned_rows(db, *(u.user_id for u in users))
    assert sorted(r["headline"] for r in rows["profiles"]) == sorted(f"Headline {i}" for i in range(USERS))
    assert {r["version"] for r in rows["profiles"]} == {1}
