"""SQL for the matching schema. Every call runs inside a transaction opened by
`Database.transaction(user_id)`, so row-level security decides what each query sees: a caller
sees discoverable candidates and their own row, their own decisions and the likes of them,
their matches and blocks. Vectors travel as real[] and are cast to pgvector's `vector` in SQL."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from asyncpg import Record

from openhr.profile.v1 import profile_pb2
from services.common.db import Tx, rows_affected
from services.common.skills import category_id, category_of_name
from services.matching.ranking import NO_COSINES, Cosines, Person, Skill

SCHEMA = "matching"
VECTOR_COLUMNS = ("offer", "seek")
# Fixed namespace: a pair of users has one match id, whoever likes last and on whichever replica.
MATCH_NAMESPACE = uuid.UUID("6f1c0d52-5d43-4c1e-9a53-0b7a3f3e2a10")

_CANDIDATE_COLUMNS = (
    "profile_id",
    "profile_version",
    "discoverable",
    "role",
    "display_name",
    "headline",
    "avatar_url",
    "city",
    "country_code",
    "timezone",
    "skills",
    "skill_keys",
    "preferences",
    "stages",
    "commitment",
    "work_modes",
)


@dataclass(frozen=True)
class Candidate:
    """A row of the read model: the person ranking sees and what a card shows."""

    person: Person
    profile_id: str
    display_name: str
    headline: str
    avatar_url: str
    city: str
    country_code: str
    discoverable: bool
    profile_version: int
    # With the viewer's vectors, when read for one (get_candidates).
    cosines: Cosines = NO_COSINES


@dataclass(frozen=True)
class Viewer:
    """The caller as a candidate, with their own vectors (None until embedded)."""

    candidate: Candidate
    offer: np.ndarray | None
    seek: np.ndarray | None


@dataclass
class Filters:
    """SQL-side candidate filters (None / empty: no condition)."""

    roles: list[str] | None = None
    stages: list[str] | None = None
    commitments: list[str] | None = None
    work_modes: list[str] | None = None
    skill_keys: list[str] | None = None
    country_code: str = ""


def match_id_for(user_a: str, user_b: str) -> str:
    first, second = sorted((user_a, user_b))
    return str(uuid.uuid5(MATCH_NAMESPACE, f"{first}:{second}"))


def skill_key(name: str) -> str:
    return name.strip().casefold()


def candidate_values(profile: profile_pb2.Profile) -> tuple:
    """The read model's columns of a profile, in _CANDIDATE_COLUMNS order (no coordinates)."""
    prefs = profile.preferences
    skills = sorted(profile.skills, key=lambda s: (-s.proficiency, s.name.casefold()))
    return (
        profile.profile_id,
        profile.version,
        profile.visibility != profile_pb2.VISIBILITY_PRIVATE,
        profile_pb2.Role.Name(profile.role),
        profile.display_name,
        profile.headline,
        profile.avatar_url,
        profile.location.city,
        profile.location.country_code,
        profile.timezone,
        # The ranking keeps the short category ids (services/common/skills.py).
        [
            {"name": s.name, "category": category_id(category_of_name(s.category)), "proficiency": s.proficiency}
            for s in skills
        ],
        sorted({skill_key(s.name) for s in skills}),
        prefs.SerializeToString(),
        [profile_pb2.StartupStage.Name(s) for s in prefs.stage.stages],
        profile_pb2.Commitment.Name(prefs.commitment.commitment),
        [profile_pb2.WorkMode.Name(m) for m in prefs.work_mode.modes],
    )


def _vector(value) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.float32)


def _candidate(row: Record, cosines: Cosines = NO_COSINES) -> Candidate:
    person = Person(
        user_id=str(row["user_id"]),
        role=profile_pb2.Role.Value(row["role"]),
        timezone=row["timezone"],
        skills=tuple(Skill(s["name"], s["category"], s["proficiency"]) for s in row["skills"]),
        preferences=profile_pb2.Preferences.FromString(row["preferences"]),
    )
    return Candidate(
        person=person,
        profile_id=str(row["profile_id"]),
        display_name=row["display_name"],
        headline=row["headline"],
        avatar_url=row["avatar_url"],
        city=row["city"],
        country_code=row["country_code"],
        discoverable=row["discoverable"],
        profile_version=row["profile_version"],
        cosines=cosines,
    )


# --- the read model ----------------------------------------------------------------------


async def upsert_candidate(tx: Tx, user_id: str, values: tuple) -> bool:
    """Writes the profile's row unless a newer (or the same) version is stored; True when written."""
    columns = ", ".join(_CANDIDATE_COLUMNS)
    params = ", ".join(f"${i}" for i in range(2, 2 + len(_CANDIDATE_COLUMNS)))
    updates = ", ".join(f"{c} = excluded.{c}" for c in _CANDIDATE_COLUMNS)
    written = await tx.fetchval(
        f"INSERT INTO matching.candidates (user_id, {columns}) VALUES ($1, {params}) "
        f"ON CONFLICT (user_id) DO UPDATE SET {updates}, updated_at = now() "
        "WHERE candidates.profile_version < excluded.profile_version RETURNING true",
        user_id,
        *values,
    )
    if written:
        await tx.execute(
            "UPDATE matching.vectors SET discoverable = $2 WHERE user_id = $1 AND discoverable <> $2",
            user_id,
            values[2],
        )
    return bool(written)


async def upsert_vectors(
    tx: Tx, user_id: str, model_id: str, version: int, offer: list[float] | None, seek: list[float] | None
) -> bool:
    """Stores the embeddings of `version` unless newer ones are stored; True when written."""
    written = await tx.fetchval(
        """
        INSERT INTO matching.vectors (user_id, model_id, profile_version, discoverable, offer, seek)
        VALUES ($1, $2, $3,
                coalesce((SELECT discoverable FROM matching.candidates WHERE user_id = $1), false),
                $4::real[]::vector, $5::real[]::vector)
        ON CONFLICT (user_id) DO UPDATE SET model_id = excluded.model_id, profile_version = excluded.profile_version,
          offer = excluded.offer, seek = excluded.seek, updated_at = now()
        WHERE vectors.profile_version < excluded.profile_version OR vectors.model_id <> excluded.model_id
        RETURNING true
        """,
        user_id,
        model_id,
        version,
        offer,
        seek,
    )
    return bool(written)


async def get_viewer(tx: Tx, model_id: str, user_id: str) -> Viewer | None:
    row = await tx.fetchrow(
        "SELECT c.*, v.offer::real[] AS offer, v.seek::real[] AS seek FROM matching.candidates c "
        "LEFT JOIN matching.vectors v ON v.user_id = c.user_id AND v.model_id = $1 WHERE c.user_id = $2",
        model_id,
        user_id,
    )
    if row is None:
        return None
    return Viewer(_candidate(row), _vector(row["offer"]), _vector(row["seek"]))


async def get_candidates(tx: Tx, model_id: str, user_ids: list[str], viewer: Viewer | None) -> dict[str, Candidate]:
    """The candidates' rows with their cosines to the viewer's vectors, computed in Postgres
    (no vector travels)."""
    seek = viewer.seek.tolist() if viewer is not None and viewer.seek is not None else None
    offer = viewer.offer.tolist() if viewer is not None and viewer.offer is not None else None
    rows = await tx.fetch(
        """
        SELECT c.*,
          1 - (v.offer <=> $3::real[]::vector) AS offer_cosine,
          1 - (v.seek <=> $4::real[]::vector) AS seek_cosine
        FROM matching.candidates c
        LEFT JOIN matching.vectors v ON v.user_id = c.user_id AND v.model_id = $1
        WHERE c.user_id = ANY($2::uuid[])
        """,
        model_id,
        user_ids,
        seek,
        offer,
    )
    return {str(row["user_id"]): _candidate(row, (row["offer_cosine"], row["seek_cosine"])) for row in rows}


async def user_of_profile(tx: Tx, profile_id: str) -> str | None:
    """The user of a profile the caller can see in the read model."""
    user_id = await tx.fetchval("SELECT user_id FROM matching.candidates WHERE profile_id = $1", profile_id)
    return str(user_id) if user_id else None


async def all_vectors(tx: Tx, model_id: str, after: str | None, limit: int) -> list[Record]:
    """Discoverable users' vectors in user id order, a page at a time (for the FAISS index)."""
    return await tx.fetch(
        "SELECT user_id, offer::real[] AS offer, seek::real[] AS seek FROM matching.vectors "
        "WHERE discoverable AND model_id = $1 AND ($2::uuid IS NULL OR user_id > $2) ORDER BY user_id LIMIT $3",
        model_id,
        after,
        limit,
    )


async def vectors_of(tx: Tx, model_id: str, user_id: str) -> Record | None:
    """One user's vectors when discoverable (None: absent or hidden)."""
    return await tx.fetchrow(
        "SELECT offer::real[] AS offer, seek::real[] AS seek FROM matching.vectors "
        "WHERE user_id = $1 AND model_id = $2 AND discoverable",
        user_id,
        model_id,
    )


# --- candidate generation ----------------------------------------------------------------

# Oneself, people already liked or passed, matched with, or blocked either way never come back.
_EXCLUSIONS = """
  AND c.discoverable AND c.user_id <> $2
  AND NOT EXISTS (SELECT 1 FROM matching.decisions d WHERE d.actor_user_id = $2 AND d.target_user_id = c.user_id)
  AND NOT EXISTS (SELECT 1 FROM matching.matches m
                  WHERE m.user_a = least($2, c.user_id) AND m.user_b = greatest($2, c.user_id))
  AND NOT EXISTS (SELECT 1 FROM matching.blocks b
                  WHERE (b.blocker_user_id = $2 AND b.blocked_user_id = c.user_id)
                     OR (b.blocker_user_id = c.user_id AND b.blocked_user_id = $2))
"""


def _conditions(filters: Filters, params: list) -> str:
    """SQL conditions on `c` for the filters; appends their parameters to `params`."""
    parts = []

    def add(sql: str, value) -> None:
        params.append(value)
        parts.append(sql.format(f"${len(params)}"))

    if filters.roles is not None:
        add("c.role = ANY({}::text[])", filters.roles)
    if filters.stages is not None:
        add("c.stages && {}::text[]", filters.stages)
    if filters.commitments is not None:
        add("c.commitment = ANY({}::text[])", filters.commitments)
    if filters.work_modes is not None:
        add("c.work_modes && {}::text[]", filters.work_modes)
    if filters.skill_keys is not None:
        add("c.skill_keys && {}::text[]", filters.skill_keys)
    if filters.country_code:
        add("c.country_code = {}", filters.country_code)
    return "".join(f"\n  AND {p}" for p in parts)


async def configure(tx: Tx, settings: dict[str, str]) -> None:
    """Sets these settings for the rest of the transaction, in one round trip."""
    if settings:
        calls = ", ".join(f"set_config(${2 * i + 1}, ${2 * i + 2}, true)" for i in range(len(settings)))
        await tx.execute(f"SELECT {calls}", *(v for item in settings.items() for v in item))


async def nearest(
    tx: Tx, model_id: str, me: str, queries: list[tuple[str, np.ndarray]], limit: int, filters: Filters
) -> list[list[str]]:
    """For each (column, query): user ids of the `limit` candidates whose `column` vector is
    nearest to `query` (cosine), after filters and exclusions, nearest first. One statement for
    all queries (one round trip); each is its own index scan."""
    params: list = [model_id, me, limit]
    conditions = _conditions(filters, params)
    scans = []
    for n, (column, query) in enumerate(queries):
        if column not in VECTOR_COLUMNS:
            raise ValueError(column)
        params.append(query.tolist())
        vector = f"${len(params)}::real[]::vector"
        scans.append(
            f"""hits{n} AS MATERIALIZED (
              SELECT {n} AS query, v.user_id, v.{column} <=> {vector} AS distance
              FROM matching.vectors v JOIN matching.candidates c ON c.user_id = v.user_id
              WHERE v.discoverable AND v.model_id = $1 AND v.{column} IS NOT NULL {_EXCLUSIONS} {conditions}
              ORDER BY v.{column} <=> {vector}
              LIMIT $3
            )"""
        )
    union = " UNION ALL ".join(f"SELECT * FROM hits{n}" for n in range(len(queries)))
    rows = await tx.fetch(f"WITH {', '.join(scans)} {union} ORDER BY query, distance, user_id", *params)
    found: list[list[str]] = [[] for _ in queries]
    for row in rows:
        found[row["query"]].append(str(row["user_id"]))
    return found


async def keep_eligible(tx: Tx, me: str, user_ids: list[str], filters: Filters) -> set[str]:
    """Which of `user_ids` pass the filters and exclusions (for an in-process index's hits)."""
    params: list = [user_ids, me]
    conditions = _conditions(filters, params)
    rows = await tx.fetch(
        f"SELECT c.user_id FROM matching.candidates c WHERE c.user_id = ANY($1::uuid[]) {_EXCLUSIONS} {conditions}",
        *params,
    )
    return {str(row["user_id"]) for row in rows}


async def recent(tx: Tx, me: str, limit: int, filters: Filters) -> list[str]:
    """The most recently updated eligible candidates (for a caller without embeddings yet)."""
    params: list = [limit, me]
    conditions = _conditions(filters, params)
    rows = await tx.fetch(
        f"SELECT c.user_id FROM matching.candidates c WHERE true {_EXCLUSIONS} {conditions} "
        "ORDER BY c.updated_at DESC, c.user_id LIMIT $1",
        *params,
    )
    return [str(row["user_id"]) for row in rows]


# --- decisions and matches ---------------------------------------------------------------


async def lock_pair(tx: Tx, user_a: str, user_b: str) -> None:
    """Serializes decisions between two users (on any replica) until the transaction ends."""
    first, second = sorted((user_a, user_b))
    await tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"matching:{first}:{second}")


async def decision(tx: Tx, actor: str, target: str) -> str | None:
    return await tx.fetchval(
        "SELECT kind FROM matching.decisions WHERE actor_user_id = $1 AND target_user_id = $2", actor, target
    )


async def add_decision(tx: Tx, actor: str, target: str, kind: str) -> None:
    await tx.execute(
        "INSERT INTO matching.decisions (actor_user_id, target_user_id, kind) VALUES ($1, $2, $3) "
        "ON CONFLICT DO NOTHING",
        actor,
        target,
        kind,
    )


@dataclass(frozen=True)
class MatchRow:
    match_id: str
    seq: int
    user_ids: tuple[str, str]
    score: float
    conversation_id: str
    created_at: datetime


def _match(row: Record) -> MatchRow:
    return MatchRow(
        match_id=str(row["match_id"]),
        seq=row["seq"],
        user_ids=(str(row["user_a"]), str(row["user_b"])),
        score=row["score"],
        conversation_id=row["conversation_id"],
        created_at=row["created_at"],
    )


async def insert_match(tx: Tx, user_a: str, user_b: str, score: float) -> MatchRow | None:
    """Creates the pair's match; None when it exists (another like won the race)."""
    first, second = sorted((user_a, user_b))
    row = await tx.fetchrow(
        "INSERT INTO matching.matches (match_id, user_a, user_b, score) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT DO NOTHING RETURNING *",
        match_id_for(first, second),
        first,
        second,
        score,
    )
    return _match(row) if row else None


async def get_match(tx: Tx, user_a: str, user_b: str) -> MatchRow | None:
    first, second = sorted((user_a, user_b))
    row = await tx.fetchrow("SELECT * FROM matching.matches WHERE user_a = $1 AND user_b = $2", first, second)
    return _match(row) if row else None


async def list_matches(tx: Tx, me: str, before_seq: int | None, limit: int) -> list[MatchRow]:
    """My matches, newest first."""
    rows = await tx.fetch(
        "SELECT * FROM matching.matches WHERE $1 IN (user_a, user_b) AND ($2::bigint IS NULL OR seq < $2) "
        "ORDER BY seq DESC LIMIT $3",
        me,
        before_seq,
        limit,
    )
    return [_match(row) for row in rows]


async def matches_after(tx: Tx, me: str, seq: int) -> list[MatchRow]:
    """My matches created after `seq`, oldest first (a feed resuming)."""
    rows = await tx.fetch(
        "SELECT * FROM matching.matches WHERE $1 IN (user_a, user_b) AND seq > $2 ORDER BY seq",
        me,
        seq,
    )
    return [_match(row) for row in rows]


async def set_conversation(tx: Tx, match_id: str, conversation_id: str) -> None:
    await tx.execute(
        "UPDATE matching.matches SET conversation_id = $2 WHERE match_id = $1", match_id, conversation_id
    )


async def add_block(tx: Tx, blocker: str, blocked: str) -> None:
    await tx.execute(
        "INSERT INTO matching.blocks (blocker_user_id, blocked_user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        blocker,
        blocked,
    )


# --- privacy and maintenance -------------------------------------------------------------



async def delete_user(tx: Tx, user_id: str) -> dict[str, int]:
    """Everything about the user: their read-model row and vectors, decisions by and about them,
    their matches and blocks."""
    counts = {}
    for table, condition in (
        ("candidates", "user_id = $1"),
        ("vectors", "user_id = $1"),
        ("decisions", "actor_user_id = $1 OR target_user_id = $1"),
        ("matches", "user_a = $1 OR user_b = $1"),
        ("blocks", "blocker_user_id = $1 OR blocked_user_id = $1"),
    ):
        status = await tx.execute(f"DELETE FROM matching.{table} WHERE {condition}", user_id)
        counts[table] = rows_affected(status)
    return counts


async def export_user(tx: Tx, user_id: str) -> dict:
    """The sections as stored (services/common/json_mapping.py maps them to JSON)."""
    decisions = await tx.fetch(
        "SELECT target_user_id, kind, created_at FROM matching.decisions WHERE actor_user_id = $1 ORDER BY created_at",
        user_id,
    )
    matches = await list_matches(tx, user_id, None, 1_000_000)
    return {
        "decisions": [
            {"target_user_id": str(r["target_user_id"]), "kind": r["kind"], "create_time": r["created_at"]}
            for r in decisions
        ],
        "matches": [
            {
                "match_id": m.match_id,
                "user_ids": list(m.user_ids),
                "score": m.score,
                "conversation_id": m.conversation_id,
                "create_time": m.created_at,
            }
            for m in matches
        ],
    }


async def enter_rebuild(tx: Tx) -> None:
    """Declares this transaction a rebuild: it may write every user's read-model rows (RLS)."""
    await tx.execute("SELECT set_config('app.maintenance', 'rebuild', true)")


async def clear_read_model(tx: Tx) -> None:
    await tx.execute("DELETE FROM matching.vectors")
    await tx.execute("DELETE FROM matching.candidates")
