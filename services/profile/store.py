"""SQL for the profile schema. Speaks protos in and out; every call runs inside a
transaction opened by `Database.transaction(user_id)`, so row-level security decides what
each query can see and change."""

from __future__ import annotations

from datetime import datetime

from asyncpg import Record
from google.protobuf import json_format, timestamp_pb2

from openhr.common.v1 import common_pb2
from openhr.profile.v1 import profile_pb2
from services.common.db import Tx, rows_affected

SCHEMA = "profile"

# A profile with its skills (strongest first) and their endorsement counts, in one query.
_PROFILES = """
SELECT p.*, coalesce(s.skills, '[]'::json) AS skills
FROM profile.profiles p
LEFT JOIN LATERAL (
  SELECT json_agg(json_build_object(
           'skill_id', sk.skill_id, 'name', sk.name, 'taxonomy_id', sk.taxonomy_id,
           'category', sk.category, 'proficiency', sk.proficiency, 'source', sk.source,
           'created_us', (extract(epoch FROM sk.created_at) * 1000000)::bigint,
           'endorsements', (SELECT count(*) FROM profile.endorsements e WHERE e.skill_id = sk.skill_id))
         ORDER BY sk.proficiency DESC, sk.name) AS skills
  FROM profile.skills sk
  WHERE sk.profile_id = p.profile_id
) s ON true
"""

_ENDORSEMENTS = """
SELECT e.*, endorser.display_name AS endorser_display_name, endorser.user_id IS NOT NULL AS endorser_visible
FROM profile.endorsements e
LEFT JOIN profile.profiles endorser ON endorser.user_id = e.endorser_user_id
"""

_COLUMNS = (
    "role",
    "display_name",
    "headline",
    "summary",
    "city",
    "country_code",
    "latitude",
    "longitude",
    "timezone",
    "years_experience",
    "looking_for",
    "github_username",
    "website_url",
    "linkedin_url",
    "avatar_url",
    "visibility",
    "preferences",
)


def _timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _microseconds(value: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMicroseconds(value)
    return stamp


def profile_values(profile: profile_pb2.Profile) -> tuple:
    """The writable columns of a profile from its proto, in _COLUMNS order."""
    return (
        profile_pb2.Role.Name(profile.role),
        profile.display_name,
        profile.headline,
        profile.summary,
        profile.location.city,
        profile.location.country_code,
        profile.location.latitude,
        profile.location.longitude,
        profile.timezone,
        profile.years_experience,
        profile.looking_for,
        profile.links.github_username,
        profile.links.website_url,
        profile.links.linkedin_url,
        profile.avatar_url,
        profile_pb2.Visibility.Name(profile.visibility),
        json_format.MessageToDict(profile.preferences, preserving_proto_field_name=True),
    )


def _skill_from_json(skill: dict) -> profile_pb2.Skill:
    return profile_pb2.Skill(
        skill_id=skill["skill_id"],
        name=skill["name"],
        taxonomy_id=skill["taxonomy_id"],
        category=skill["category"],
        proficiency=skill["proficiency"],
        source=profile_pb2.SkillSource.Value(skill["source"]),
        custom=not skill["taxonomy_id"],
        endorsement_count=skill["endorsements"],
        create_time=_microseconds(skill["created_us"]),
    )


def _profile(row: Record) -> profile_pb2.Profile:
    return profile_pb2.Profile(
        profile_id=str(row["profile_id"]),
        user_id=str(row["user_id"]),
        role=profile_pb2.Role.Value(row["role"]),
        display_name=row["display_name"],
        headline=row["headline"],
        summary=row["summary"],
        location=common_pb2.Location(
            city=row["city"], country_code=row["country_code"], latitude=row["latitude"], longitude=row["longitude"]
        ),
        timezone=row["timezone"],
        years_experience=row["years_experience"],
        looking_for=row["looking_for"],
        links=profile_pb2.Links(
            github_username=row["github_username"],
            website_url=row["website_url"],
            linkedin_url=row["linkedin_url"],
        ),
        visibility=profile_pb2.Visibility.Value(row["visibility"]),
        avatar_url=row["avatar_url"],
        completeness=row["completeness"],
        version=row["version"],
        skills=[_skill_from_json(s) for s in row["skills"]],
        create_time=_timestamp(row["created_at"]),
        update_time=_timestamp(row["updated_at"]),
        # Stored by profile_values (MessageToDict: field names, enum names): the constructor takes that
        # form as it is, ~10x faster than json_format.ParseDict, and refuses unknown names alike.
        preferences=row["preferences"],
    )


def _skill(row: Record, endorsement_count: int) -> profile_pb2.Skill:
    return profile_pb2.Skill(
        skill_id=str(row["skill_id"]),
        name=row["name"],
        taxonomy_id=row["taxonomy_id"],
        category=row["category"],
        proficiency=row["proficiency"],
        source=profile_pb2.SkillSource.Value(row["source"]),
        custom=not row["taxonomy_id"],
        endorsement_count=endorsement_count,
        create_time=_timestamp(row["created_at"]),
    )


def _endorsement(row: Record) -> profile_pb2.Endorsement:
    return profile_pb2.Endorsement(
        endorsement_id=str(row["endorsement_id"]),
        profile_id=str(row["profile_id"]),
        skill_id=str(row["skill_id"]),
        # Who endorsed is shown only to those who may see the endorser's profile (RLS decides
        # whether the join found it): a private endorser stays anonymous.
        endorser_user_id=str(row["endorser_user_id"]) if row["endorser_visible"] else "",
        endorser_display_name=row["endorser_display_name"] or "",
        note=row["note"],
        create_time=_timestamp(row["created_at"]),
    )


async def get_by_id(tx: Tx, profile_id: str) -> profile_pb2.Profile | None:
    row = await tx.fetchrow(_PROFILES + "WHERE p.profile_id = $1", profile_id)
    return _profile(row) if row else None


async def get_by_user(tx: Tx, user_id: str) -> profile_pb2.Profile | None:
    row = await tx.fetchrow(_PROFILES + "WHERE p.user_id = $1", user_id)
    return _profile(row) if row else None


async def get_many_by_user(tx: Tx, user_ids: list[str]) -> list[profile_pb2.Profile]:
    rows = await tx.fetch(_PROFILES + "WHERE p.user_id = ANY($1::uuid[])", user_ids)
    return [_profile(row) for row in rows]


async def visible_owner(tx: Tx, profile_id: str) -> str | None:
    """The owner of a profile the caller can see; None when it does not exist for them."""
    owner = await tx.fetchval("SELECT user_id FROM profile.profiles WHERE profile_id = $1", profile_id)
    return str(owner) if owner else None


async def request_id_of(tx: Tx, user_id: str) -> str | None:
    request_id = await tx.fetchval("SELECT request_id FROM profile.profiles WHERE user_id = $1", user_id)
    return str(request_id) if request_id else None


async def insert_profile(
    tx: Tx, user_id: str, profile: profile_pb2.Profile, completeness: int, request_id: str | None
) -> str | None:
    """Inserts the caller's profile; None when they already have one."""
    columns = ", ".join(_COLUMNS)
    params = ", ".join(f"${i}" for i in range(5, 5 + len(_COLUMNS)))
    profile_id = await tx.fetchval(
        f"INSERT INTO profile.profiles (user_id, completeness, version, request_id, {columns}) "
        f"VALUES ($1, $2, $3, $4, {params}) ON CONFLICT (user_id) DO NOTHING RETURNING profile_id",
        user_id,
        completeness,
        1,
        request_id,
        *profile_values(profile),
    )
    return str(profile_id) if profile_id else None


async def lock_profile(tx: Tx, profile_id: str) -> bool:
    """Locks the caller's own profile for an update; False when it is not theirs or absent."""
    locked = await tx.fetchval("SELECT true FROM profile.profiles WHERE profile_id = $1 FOR UPDATE", profile_id)
    return bool(locked)


async def write_profile(tx: Tx, profile: profile_pb2.Profile, completeness: int) -> None:
    assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(_COLUMNS, start=3))
    await tx.execute(
        f"UPDATE profile.profiles SET completeness = $2, version = version + 1, updated_at = now(), {assignments} "
        "WHERE profile_id = $1",
        profile.profile_id,
        completeness,
        *profile_values(profile),
    )


async def touch_profile(tx: Tx, profile_id: str, completeness: int) -> None:
    """Bumps version and completeness after a skill change."""
    await tx.execute(
        "UPDATE profile.profiles SET completeness = $2, version = version + 1, updated_at = now() "
        "WHERE profile_id = $1",
        profile_id,
        completeness,
    )


async def list_skills(tx: Tx, profile_id: str) -> list[profile_pb2.Skill]:
    profile = await tx.fetchrow(_PROFILES + "WHERE p.profile_id = $1", profile_id)
    return [_skill_from_json(s) for s in profile["skills"]] if profile else []


async def count_skills(tx: Tx, profile_id: str) -> int:
    return await tx.fetchval("SELECT count(*) FROM profile.skills WHERE profile_id = $1", profile_id)


async def upsert_skill(
    tx: Tx,
    *,
    profile_id: str,
    user_id: str,
    name: str,
    taxonomy_id: str,
    category: str,
    proficiency: int,
    source: int,
) -> profile_pb2.Skill:
    """Adds the skill, or updates the proficiency and source of the one with the same key."""
    row = await tx.fetchrow(
        """
        INSERT INTO profile.skills (profile_id, user_id, skill_key, name, taxonomy_id, category, proficiency, source)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (profile_id, skill_key)
        DO UPDATE SET proficiency = excluded.proficiency, source = excluded.source, updated_at = now()
        RETURNING *, (SELECT count(*) FROM profile.endorsements e WHERE e.skill_id = skills.skill_id) AS endorsements
        """,
        profile_id,
        user_id,
        taxonomy_id or f"custom:{name.casefold()}",
        name,
        taxonomy_id,
        category,
        proficiency,
        profile_pb2.SkillSource.Name(source),
    )
    return _skill(row, row["endorsements"])


async def merge_enriched_skill(
    tx: Tx, *, profile_id: str, user_id: str, name: str, taxonomy_id: str, category: str, proficiency: int, source: int
) -> tuple[profile_pb2.Skill, bool] | None:
    """(skill, changed) for a skill found by enrichment: a skill the user entered by hand keeps
    its source and proficiency (changed False). None when the skill is new: the caller adds it
    with `upsert_skill` if the profile has room."""
    row = await tx.fetchrow(
        """
        SELECT *, (SELECT count(*) FROM profile.endorsements e WHERE e.skill_id = skills.skill_id) AS endorsements
        FROM profile.skills WHERE profile_id = $1 AND skill_key = $2
        """,
        profile_id,
        taxonomy_id or f"custom:{name.casefold()}",
    )
    if row is None:
        return None
    if row["source"] == profile_pb2.SkillSource.Name(profile_pb2.SKILL_SOURCE_MANUAL):
        return _skill(row, row["endorsements"]), False
    skill = await upsert_skill(
        tx,
        profile_id=profile_id,
        user_id=user_id,
        name=name,
        taxonomy_id=taxonomy_id,
        category=category,
        proficiency=proficiency,
        source=source,
    )
    return skill, True


async def delete_skill(tx: Tx, profile_id: str, skill_id: str) -> bool:
    status = await tx.execute(
        "DELETE FROM profile.skills WHERE profile_id = $1 AND skill_id = $2", profile_id, skill_id
    )
    return status == "DELETE 1"


async def skill_owner(tx: Tx, profile_id: str, skill_id: str) -> str | None:
    """The user owning this skill of this profile, if the caller can see it."""
    owner = await tx.fetchval(
        "SELECT user_id FROM profile.skills WHERE profile_id = $1 AND skill_id = $2", profile_id, skill_id
    )
    return str(owner) if owner else None


async def insert_endorsement(
    tx: Tx, *, profile_id: str, skill_id: str, owner_user_id: str, endorser_user_id: str, note: str
) -> profile_pb2.Endorsement | None:
    """None when this endorser already endorsed this skill."""
    endorsement_id = await tx.fetchval(
        """
        INSERT INTO profile.endorsements (profile_id, skill_id, owner_user_id, endorser_user_id, note)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (skill_id, endorser_user_id) DO NOTHING
        RETURNING endorsement_id
        """,
        profile_id,
        skill_id,
        owner_user_id,
        endorser_user_id,
        note,
    )
    if endorsement_id is None:
        return None
    return _endorsement(await tx.fetchrow(_ENDORSEMENTS + "WHERE e.endorsement_id = $1", endorsement_id))


async def list_endorsements(tx: Tx, profile_id: str) -> list[profile_pb2.Endorsement]:
    rows = await tx.fetch(_ENDORSEMENTS + "WHERE e.profile_id = $1 ORDER BY e.created_at DESC", profile_id)
    return [_endorsement(row) for row in rows]


async def connected_to(tx: Tx, user_id: str, others: list[str]) -> set[str]:
    """Which of `others` are matched with `user_id`."""
    rows = await tx.fetch(
        "SELECT other_user_id FROM profile.connections WHERE user_id = $1 AND other_user_id = ANY($2::uuid[])",
        user_id,
        others,
    )
    return {str(row["other_user_id"]) for row in rows}


async def enter_discovery(tx: Tx) -> None:
    """Declares this transaction a service's paging of every discoverable profile (RLS)."""
    await tx.execute("SELECT set_config('app.discovery', 'on', true)")


async def discoverable_page(tx: Tx, after: str | None, limit: int) -> list[profile_pb2.Profile]:
    """PUBLIC and MATCHES_ONLY profiles in user id order, after `after` (inside enter_discovery)."""
    rows = await tx.fetch(
        _PROFILES + "WHERE p.visibility <> 'VISIBILITY_PRIVATE' AND ($1::uuid IS NULL OR p.user_id > $1) "
        "ORDER BY p.user_id LIMIT $2",
        after,
        limit,
    )
    return [_profile(row) for row in rows]


async def add_connection(tx: Tx, user_id: str, other_user_id: str) -> None:
    await tx.execute(
        "INSERT INTO profile.connections (user_id, other_user_id) VALUES ($1, $2), ($2, $1) ON CONFLICT DO NOTHING",
        user_id,
        other_user_id,
    )


async def export_user(tx: Tx, user_id: str) -> dict:
    """Everything stored about the user, as JSON-compatible sections."""
    profile = await get_by_user(tx, user_id)
    given = await tx.fetch("SELECT * FROM profile.endorsements WHERE endorser_user_id = $1", user_id)
    received = await list_endorsements(tx, profile.profile_id) if profile else []
    return {
        "profile": json_format.MessageToDict(profile) if profile else None,
        "endorsements_given": [
            {
                "skill_id": str(r["skill_id"]),
                "profile_id": str(r["profile_id"]),
                "note": r["note"],
                "create_time": r["created_at"],
            }
            for r in given
        ],
        "endorsements_received": [json_format.MessageToDict(e) for e in received],
    }



async def delete_user(tx: Tx, user_id: str) -> dict[str, int]:
    given = await tx.execute("DELETE FROM profile.endorsements WHERE endorser_user_id = $1", user_id)
    connections = await tx.execute("DELETE FROM profile.connections WHERE user_id = $1 OR other_user_id = $1", user_id)
    removed = await tx.execute("DELETE FROM profile.profiles WHERE user_id = $1", user_id)
    return {
        "profiles": rows_affected(removed),
        "endorsements_given": rows_affected(given),
        "connections": rows_affected(connections),
    }
