"""SQL for the profile schema. Speaks protos in and out; every call runs inside a
transaction opened by `Database.transaction(user_id)`, so row-level security decides what
each query can see and change."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import json_format, timestamp_pb2
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    MetaData,
    SmallInteger,
    Table,
    Text,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID, insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from openhr.common.v1 import common_pb2
from openhr.profile.v1 import profile_pb2
from services.common.consumer import inbox_table
from services.common.outbox import outbox_table

SCHEMA = "profile"
metadata = MetaData(schema=SCHEMA)
_uuid = UUID(as_uuid=False)

profiles = Table(
    "profiles",
    metadata,
    Column("profile_id", _uuid, primary_key=True, server_default=func.gen_random_uuid()),
    Column("user_id", _uuid, nullable=False, unique=True),
    Column("role", Text, nullable=False),
    Column("display_name", Text, nullable=False),
    Column("headline", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("city", Text, nullable=False),
    Column("country_code", Text, nullable=False),
    Column("latitude", Float, nullable=False),
    Column("longitude", Float, nullable=False),
    Column("timezone", Text, nullable=False),
    Column("years_experience", SmallInteger, nullable=False),
    Column("looking_for", Text, nullable=False),
    Column("github_username", Text, nullable=False),
    Column("website_url", Text, nullable=False),
    Column("linkedin_url", Text, nullable=False),
    Column("avatar_url", Text, nullable=False),
    Column("visibility", Text, nullable=False),
    Column("preferences", JSONB, nullable=False),
    Column("completeness", SmallInteger, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("request_id", _uuid),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

skills = Table(
    "skills",
    metadata,
    Column("skill_id", _uuid, primary_key=True, server_default=func.gen_random_uuid()),
    Column("profile_id", _uuid, nullable=False),
    Column("user_id", _uuid, nullable=False),
    Column("skill_key", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("taxonomy_id", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("proficiency", SmallInteger, nullable=False),
    Column("source", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

endorsements = Table(
    "endorsements",
    metadata,
    Column("endorsement_id", _uuid, primary_key=True, server_default=func.gen_random_uuid()),
    Column("profile_id", _uuid, nullable=False),
    Column("skill_id", _uuid, nullable=False),
    Column("owner_user_id", _uuid, nullable=False),
    Column("endorser_user_id", _uuid, nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

connections = Table(
    "connections",
    metadata,
    Column("user_id", _uuid, primary_key=True),
    Column("other_user_id", _uuid, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

outbox = outbox_table(metadata, SCHEMA)
inbox = inbox_table(metadata, SCHEMA)


def _timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _enum_name(enum, value: int) -> str:
    return enum.Name(value)


def profile_columns(profile: profile_pb2.Profile) -> dict:
    """The writable columns of a profile, from its proto."""
    return {
        "role": _enum_name(profile_pb2.Role, profile.role),
        "display_name": profile.display_name.strip(),
        "headline": profile.headline,
        "summary": profile.summary,
        "city": profile.location.city,
        "country_code": profile.location.country_code,
        "latitude": profile.location.latitude,
        "longitude": profile.location.longitude,
        "timezone": profile.timezone,
        "years_experience": profile.years_experience,
        "looking_for": profile.looking_for,
        "github_username": profile.links.github_username,
        "website_url": profile.links.website_url,
        "linkedin_url": profile.links.linkedin_url,
        "avatar_url": profile.avatar_url,
        "visibility": _enum_name(profile_pb2.Visibility, profile.visibility or profile_pb2.VISIBILITY_PUBLIC),
        "preferences": json_format.MessageToDict(profile.preferences, preserving_proto_field_name=True),
    }


def _profile(
    row: Row, skill_rows: list[Row] = (), endorsement_counts: dict[str, int] | None = None
) -> profile_pb2.Profile:
    profile = profile_pb2.Profile(
        profile_id=row.profile_id,
        user_id=row.user_id,
        role=profile_pb2.Role.Value(row.role),
        display_name=row.display_name,
        headline=row.headline,
        summary=row.summary,
        location=common_pb2.Location(
            city=row.city, country_code=row.country_code, latitude=row.latitude, longitude=row.longitude
        ),
        timezone=row.timezone,
        years_experience=row.years_experience,
        looking_for=row.looking_for,
        links=profile_pb2.Links(
            github_username=row.github_username, website_url=row.website_url, linkedin_url=row.linkedin_url
        ),
        visibility=profile_pb2.Visibility.Value(row.visibility),
        avatar_url=row.avatar_url,
        completeness=row.completeness,
        version=row.version,
        create_time=_timestamp(row.created_at),
        update_time=_timestamp(row.updated_at),
    )
    json_format.ParseDict(row.preferences, profile.preferences)
    profile.skills.extend(_skill(s, (endorsement_counts or {}).get(s.skill_id, 0)) for s in skill_rows)
    return profile


def _skill(row: Row, endorsement_count: int = 0) -> profile_pb2.Skill:
    return profile_pb2.Skill(
        skill_id=row.skill_id,
        name=row.name,
        taxonomy_id=row.taxonomy_id,
        category=row.category,
        proficiency=row.proficiency,
        source=profile_pb2.SkillSource.Value(row.source),
        custom=not row.taxonomy_id,
        endorsement_count=endorsement_count,
        create_time=_timestamp(row.created_at),
    )


def _endorsement(row: Row) -> profile_pb2.Endorsement:
    return profile_pb2.Endorsement(
        endorsement_id=row.endorsement_id,
        profile_id=row.profile_id,
        skill_id=row.skill_id,
        endorser_user_id=row.endorser_user_id,
        endorser_display_name=row.endorser_display_name or "",
        note=row.note,
        create_time=_timestamp(row.created_at),
    )


async def _skills_of(session: AsyncSession, profile_ids: list[str]) -> dict[str, list[Row]]:
    rows = (
        await session.execute(
            select(skills)
            .where(skills.c.profile_id.in_(profile_ids))
            .order_by(skills.c.proficiency.desc(), skills.c.name)
        )
    ).all()
    by_profile: dict[str, list[Row]] = {pid: [] for pid in profile_ids}
    for row in rows:
        by_profile[row.profile_id].append(row)
    return by_profile


async def _endorsement_counts(session: AsyncSession, profile_ids: list[str]) -> dict[str, int]:
    rows = await session.execute(
        select(endorsements.c.skill_id, func.count())
        .where(endorsements.c.profile_id.in_(profile_ids))
        .group_by(endorsements.c.skill_id)
    )
    return dict(rows.all())


async def _load(session: AsyncSession, condition) -> list[profile_pb2.Profile]:
    rows = (await session.execute(select(profiles).where(condition))).all()
    if not rows:
        return []
    ids = [r.profile_id for r in rows]
    skill_rows = await _skills_of(session, ids)
    counts = await _endorsement_counts(session, ids)
    return [_profile(r, skill_rows[r.profile_id], counts) for r in rows]


async def get_by_id(session: AsyncSession, profile_id: str) -> profile_pb2.Profile | None:
    found = await _load(session, profiles.c.profile_id == profile_id)
    return found[0] if found else None


async def get_by_user(session: AsyncSession, user_id: str) -> profile_pb2.Profile | None:
    found = await _load(session, profiles.c.user_id == user_id)
    return found[0] if found else None


async def get_many_by_user(session: AsyncSession, user_ids: list[str]) -> list[profile_pb2.Profile]:
    return await _load(session, profiles.c.user_id.in_(user_ids))


async def request_id_of(session: AsyncSession, user_id: str) -> str | None:
    return await session.scalar(select(profiles.c.request_id).where(profiles.c.user_id == user_id))


async def insert_profile(
    session: AsyncSession, user_id: str, profile: profile_pb2.Profile, completeness: int, request_id: str | None
) -> str | None:
    """Inserts the caller's profile; None when they already have one."""
    return await session.scalar(
        insert(profiles)
        .values(
            user_id=user_id, completeness=completeness, version=1, request_id=request_id, **profile_columns(profile)
        )
        .on_conflict_do_nothing(index_elements=[profiles.c.user_id])
        .returning(profiles.c.profile_id)
    )


async def lock_profile(session: AsyncSession, profile_id: str) -> bool:
    """Locks the caller's own profile for an update; False when it is not theirs or absent."""
    locked = await session.scalar(
        select(profiles.c.profile_id).where(profiles.c.profile_id == profile_id).with_for_update()
    )
    return locked is not None


async def write_profile(session: AsyncSession, profile: profile_pb2.Profile, completeness: int) -> None:
    await session.execute(
        update(profiles)
        .where(profiles.c.profile_id == profile.profile_id)
        .values(
            completeness=completeness,
            version=profiles.c.version + 1,
            updated_at=func.now(),
            **profile_columns(profile),
        )
    )


async def touch_profile(session: AsyncSession, profile_id: str, completeness: int) -> None:
    """Bumps version and completeness after a skill change."""
    await session.execute(
        update(profiles)
        .where(profiles.c.profile_id == profile_id)
        .values(completeness=completeness, version=profiles.c.version + 1, updated_at=func.now())
    )


async def list_skills(session: AsyncSession, profile_id: str) -> list[profile_pb2.Skill]:
    rows = (await _skills_of(session, [profile_id]))[profile_id]
    counts = await _endorsement_counts(session, [profile_id])
    return [_skill(r, counts.get(r.skill_id, 0)) for r in rows]


async def count_skills(session: AsyncSession, profile_id: str) -> int:
    return await session.scalar(select(func.count()).select_from(skills).where(skills.c.profile_id == profile_id))


async def upsert_skill(
    session: AsyncSession,
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
    key = taxonomy_id or f"custom:{name.casefold()}"
    statement = insert(skills).values(
        profile_id=profile_id,
        user_id=user_id,
        skill_key=key,
        name=name,
        taxonomy_id=taxonomy_id,
        category=category,
        proficiency=proficiency,
        source=_enum_name(profile_pb2.SkillSource, source),
    )
    statement = statement.on_conflict_do_update(
        index_elements=[skills.c.profile_id, skills.c.skill_key],
        set_={
            "proficiency": statement.excluded.proficiency,
            "source": statement.excluded.source,
            "updated_at": func.now(),
        },
    ).returning(*skills.c)
    row = (await session.execute(statement)).one()
    count = await session.scalar(
        select(func.count()).select_from(endorsements).where(endorsements.c.skill_id == row.skill_id)
    )
    return _skill(row, count)


async def delete_skill(session: AsyncSession, profile_id: str, skill_id: str) -> bool:
    result = await session.execute(
        delete(skills).where(skills.c.profile_id == profile_id, skills.c.skill_id == skill_id)
    )
    return result.rowcount == 1


async def skill_owner(session: AsyncSession, profile_id: str, skill_id: str) -> str | None:
    """The user owning this skill of this profile, if the caller can see it."""
    return await session.scalar(
        select(skills.c.user_id).where(skills.c.profile_id == profile_id, skills.c.skill_id == skill_id)
    )


def _endorsements_with_names():
    endorser = profiles.alias("endorser")
    return select(*endorsements.c, endorser.c.display_name.label("endorser_display_name")).select_from(
        endorsements.outerjoin(endorser, endorser.c.user_id == endorsements.c.endorser_user_id)
    )


async def insert_endorsement(
    session: AsyncSession, *, profile_id: str, skill_id: str, owner_user_id: str, endorser_user_id: str, note: str
) -> profile_pb2.Endorsement | None:
    """None when this endorser already endorsed this skill."""
    endorsement_id = await session.scalar(
        insert(endorsements)
        .values(
            profile_id=profile_id,
            skill_id=skill_id,
            owner_user_id=owner_user_id,
            endorser_user_id=endorser_user_id,
            note=note,
        )
        .on_conflict_do_nothing(index_elements=[endorsements.c.skill_id, endorsements.c.endorser_user_id])
        .returning(endorsements.c.endorsement_id)
    )
    if endorsement_id is None:
        return None
    row = (
        await session.execute(_endorsements_with_names().where(endorsements.c.endorsement_id == endorsement_id))
    ).one()
    return _endorsement(row)


async def list_endorsements(session: AsyncSession, profile_id: str) -> list[profile_pb2.Endorsement]:
    rows = await session.execute(
        _endorsements_with_names()
        .where(endorsements.c.profile_id == profile_id)
        .order_by(endorsements.c.created_at.desc())
    )
    return [_endorsement(r) for r in rows.all()]


async def add_connection(session: AsyncSession, user_id: str, other_user_id: str) -> None:
    for a, b in ((user_id, other_user_id), (other_user_id, user_id)):
        await session.execute(insert(connections).values(user_id=a, other_user_id=b).on_conflict_do_nothing())


async def export_user(session: AsyncSession, user_id: str) -> dict:
    """Everything stored about the user, as JSON-compatible sections."""
    profile = await get_by_user(session, user_id)
    given = (await session.execute(select(endorsements).where(endorsements.c.endorser_user_id == user_id))).all()
    return {
        "profile": json_format.MessageToDict(profile) if profile else None,
        "endorsements_given": [
            {"skill_id": r.skill_id, "profile_id": r.profile_id, "note": r.note, "created_at": r.created_at.isoformat()}
            for r in given
        ],
        "endorsements_received": [
            json_format.MessageToDict(e)
            for e in (await list_endorsements(session, profile.profile_id) if profile else [])
        ],
    }


async def delete_user(session: AsyncSession, user_id: str) -> dict[str, int]:
    given = await session.execute(delete(endorsements).where(endorsements.c.endorser_user_id == user_id))
    conns = await session.execute(
        delete(connections).where((connections.c.user_id == user_id) | (connections.c.other_user_id == user_id))
    )
    removed = await session.execute(delete(profiles).where(profiles.c.user_id == user_id))
    return {"profiles": removed.rowcount, "endorsements_given": given.rowcount, "connections": conns.rowcount}


async def visible_owner(session: AsyncSession, profile_id: str) -> str | None:
    """The owner of a profile the caller can see; None when it does not exist for them."""
    return await session.scalar(select(profiles.c.user_id).where(profiles.c.profile_id == profile_id))
