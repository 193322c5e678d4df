"""SQL of the enrichment schema (asyncpg, inside transactions opened with the caller's id).

Vectors travel as real[] and are cast to pgvector's `vector` in SQL (no codec to register)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from services.common.db import Tx, rows_affected
from services.enrichment.profile_texts import ProfileTexts

SCHEMA = "enrichment"


# --- Jobs, suggestions and imported GitHub data (services/enrichment/jobs.py) ----------------
# A running job's writes name its lease owner: a worker that lost its lease changes nothing.
# Every change of a job notifies JOB_CHANNEL (delivered on commit) for WatchEnrichmentJob.

JOB_CHANNEL = "enrichment_jobs"
_JOB_COLUMNS = """job_id, user_id, kind, state, progress, stage, github_login, result, failure_reason,
    error_message, attempts, created_at, updated_at"""


async def _notify(tx: Tx, job_id) -> None:
    await tx.execute("SELECT pg_notify($1, $2)", JOB_CHANNEL, str(job_id))


async def insert_job(
    tx: Tx, *, user_id: str, kind: str, request_id: str | None, github_login: str = "", document: bytes | None = None
) -> tuple[asyncpg.Record, bool]:
    """(the job, created): with a request id already used by this user, the job it started."""
    row = await tx.fetchrow(
        f"""
        INSERT INTO enrichment.jobs (user_id, kind, request_id, github_login, document)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (user_id, request_id) DO NOTHING
        RETURNING {_JOB_COLUMNS}
        """,
        user_id,
        kind,
        request_id,
        github_login,
        document,
    )
    if row is not None:
        await _notify(tx, row["job_id"])
        return row, True
    existing = await tx.fetchrow(
        f"SELECT {_JOB_COLUMNS} FROM enrichment.jobs WHERE user_id = $1 AND request_id = $2", user_id, request_id
    )
    return existing, False


async def get_job(tx: Tx, job_id: str) -> asyncpg.Record | None:
    return await tx.fetchrow(f"SELECT {_JOB_COLUMNS} FROM enrichment.jobs WHERE job_id = $1", job_id)


async def list_jobs(tx: Tx, user_id: str, limit: int, after: tuple | None) -> list[asyncpg.Record]:
    """Newest first; `after` is the (created_at, job_id) of the last job of the previous page."""
    if after is None:
        return await tx.fetch(
            f"SELECT {_JOB_COLUMNS} FROM enrichment.jobs WHERE user_id = $1 "
            "ORDER BY created_at DESC, job_id DESC LIMIT $2",
            user_id,
            limit,
        )
    return await tx.fetch(
        f"SELECT {_JOB_COLUMNS} FROM enrichment.jobs WHERE user_id = $1 AND (created_at, job_id) < ($2, $3) "
        "ORDER BY created_at DESC, job_id DESC LIMIT $4",
        user_id,
        after[0],
        after[1],
        limit,
    )


async def queued_job(tx: Tx, user_id: str, kind: str) -> asyncpg.Record | None:
    return await tx.fetchrow(
        f"SELECT {_JOB_COLUMNS} FROM enrichment.jobs WHERE user_id = $1 AND kind = $2 AND state = 'queued' "
        "ORDER BY created_at LIMIT 1",
        user_id,
        kind,
    )


async def claim_job(tx: Tx, worker: str, lease_seconds: float) -> tuple[str, str] | None:
    """(job id, owner) of a due job now leased to `worker` (run in a transaction without a user)."""
    row = await tx.fetchrow("SELECT claimed_job, claimed_user FROM enrichment.claim_job($1, $2)", worker, lease_seconds)
    return (str(row["claimed_job"]), str(row["claimed_user"])) if row else None


async def leased_job(tx: Tx, job_id: str, worker: str) -> asyncpg.Record | None:
    """The job with its document, if `worker` holds its lease."""
    return await tx.fetchrow(
        f"SELECT {_JOB_COLUMNS}, document FROM enrichment.jobs "
        "WHERE job_id = $1 AND state = 'running' AND lease_owner = $2",
        job_id,
        worker,
    )


async def update_progress(tx: Tx, job_id: str, worker: str, progress: int, stage: str) -> bool:
    status = await tx.execute(
        "UPDATE enrichment.jobs SET progress = $3, stage = $4, updated_at = now() "
        "WHERE job_id = $1 AND state = 'running' AND lease_owner = $2",
        job_id,
        worker,
        progress,
        stage,
    )
    if status != "UPDATE 1":
        return False
    await _notify(tx, job_id)
    return True


async def renew_lease(tx: Tx, job_id: str, worker: str, lease_seconds: float) -> bool:
    status = await tx.execute(
        "UPDATE enrichment.jobs SET lease_expires_at = now() + make_interval(secs => $3) "
        "WHERE job_id = $1 AND state = 'running' AND lease_owner = $2",
        job_id,
        worker,
        lease_seconds,
    )
    return status == "UPDATE 1"


async def finish_job(
    tx: Tx,
    job_id: str,
    worker: str,
    *,
    succeeded: bool,
    result: dict | None = None,
    reason: str = "",
    message: str = "",
) -> bool:
    """Ends a leased job; the document goes whatever the outcome."""
    status = await tx.execute(
        """
        UPDATE enrichment.jobs
        SET state = $3, progress = CASE WHEN $3 = 'succeeded' THEN 100 ELSE progress END,
            stage = CASE WHEN $3 = 'succeeded' THEN 'Done' ELSE 'Failed' END,
            result = $4, failure_reason = $5, error_message = $6, document = NULL,
            lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
        WHERE job_id = $1 AND state = 'running' AND lease_owner = $2
        """,
        job_id,
        worker,
        "succeeded" if succeeded else "failed",
        result,
        reason,
        message,
    )
    if status != "UPDATE 1":
        return False
    await _notify(tx, job_id)
    return True


async def requeue_job(tx: Tx, job_id: str, worker: str, *, delay: float, stage: str, undo_attempt: bool) -> bool:
    """Back to the queue: to retry after `delay` seconds, or at once after a shutdown (which does
    not count as an attempt)."""
    status = await tx.execute(
        """
        UPDATE enrichment.jobs
        SET state = 'queued', stage = $3, run_after = now() + make_interval(secs => $4),
            attempts = attempts - $5::int, lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
        WHERE job_id = $1 AND state = 'running' AND lease_owner = $2
        """,
        job_id,
        worker,
        stage,
        delay,
        1 if undo_attempt else 0,
    )
    if status != "UPDATE 1":
        return False
    await _notify(tx, job_id)
    return True


_SUGGESTION_COLUMNS = """suggestion_id, job_id, source, name, taxonomy_id, category, proficiency, confidence,
    evidence, state, note, updated_at"""


async def refresh_suggestions(tx: Tx, *, user_id: str, source: str, job_id: str, skills: list[dict]) -> list:
    """An import's findings become the user's suggestions from `source`: one per skill, updated in
    place (a rejected or applied one keeps its state), and pending ones it no longer finds go."""
    rows = []
    for skill in skills:
        row = await tx.fetchrow(
            f"""
            INSERT INTO enrichment.suggestions (user_id, source, skill_key, job_id, name, taxonomy_id, category,
                                                proficiency, confidence, evidence)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            ON CONFLICT (user_id, source, skill_key) DO UPDATE
            SET job_id = excluded.job_id, name = excluded.name, category = excluded.category,
                proficiency = excluded.proficiency, confidence = excluded.confidence,
                evidence = excluded.evidence, updated_at = now()
            RETURNING {_SUGGESTION_COLUMNS}
            """,
            user_id,
            source,
            skill["taxonomy_id"] or f"custom:{skill['name'].casefold()}",
            job_id,
            skill["name"],
            skill["taxonomy_id"],
            skill["category"],
            skill["proficiency"],
            skill["confidence"],
            skill["evidence"],
        )
        rows.append(row)
    await tx.execute(
        "DELETE FROM enrichment.suggestions WHERE user_id = $1 AND source = $2 AND job_id <> $3 AND state = 'pending'",
        user_id,
        source,
        job_id,
    )
    return rows


async def list_suggestions(tx: Tx, user_id: str, source: str | None, state: str | None) -> list:
    return await tx.fetch(
        f"""
        SELECT {_SUGGESTION_COLUMNS} FROM enrichment.suggestions
        WHERE user_id = $1 AND ($2::text IS NULL OR source = $2) AND ($3::text IS NULL OR state = $3)
        ORDER BY confidence DESC, name
        """,
        user_id,
        source,
        state,
    )


async def job_suggestions(tx: Tx, job_id: str) -> list:
    return await tx.fetch(
        f"SELECT {_SUGGESTION_COLUMNS} FROM enrichment.suggestions WHERE job_id = $1 ORDER BY confidence DESC, name",
        job_id,
    )


async def review_suggestions(tx: Tx, user_id: str, ids: list[str], state: str, from_states: tuple[str, ...]) -> list:
    """Moves the caller's suggestions among `ids` that are in `from_states` to `state`; returns
    every one of `ids` the caller owns, as it is now."""
    await tx.execute(
        "UPDATE enrichment.suggestions SET state = $3, note = '', updated_at = now() "
        "WHERE user_id = $1 AND suggestion_id = ANY($2::uuid[]) AND state = ANY($4::text[])",
        user_id,
        ids,
        state,
        list(from_states),
    )
    return await tx.fetch(
        f"SELECT {_SUGGESTION_COLUMNS} FROM enrichment.suggestions "
        "WHERE user_id = $1 AND suggestion_id = ANY($2::uuid[]) ORDER BY confidence DESC, name",
        user_id,
        ids,
    )


async def accepted_suggestions(tx: Tx, user_id: str) -> list:
    return await tx.fetch(
        f"SELECT {_SUGGESTION_COLUMNS} FROM enrichment.suggestions WHERE user_id = $1 AND state = 'accepted' "
        "ORDER BY confidence DESC, name",
        user_id,
    )


async def settle_suggestions(tx: Tx, user_id: str, ids: list[str], state: str, note: str = "") -> None:
    """Accepted suggestions an apply job handled: applied, or not applied with a note."""
    await tx.execute(
        "UPDATE enrichment.suggestions SET state = $3, note = $4, updated_at = now() "
        "WHERE user_id = $1 AND suggestion_id = ANY($2::uuid[]) AND state = 'accepted'",
        user_id,
        ids,
        state,
        note,
    )


async def save_github_import(tx: Tx, *, user_id: str, login: str, job_id: str, data: dict) -> None:
    await tx.execute(
        """
        INSERT INTO enrichment.github_imports (user_id, login, job_id, data) VALUES ($1, $2, $3, $4)
        ON CONFLICT (user_id) DO UPDATE
        SET login = excluded.login, job_id = excluded.job_id, data = excluded.data, imported_at = now()
        """,
        user_id,
        login,
        job_id,
        data,
    )


@dataclass(frozen=True)
class StoredTexts:
    profile_id: str
    profile_version: int
    texts: ProfileTexts


async def get_texts(tx: Tx, user_id: str, *, lock: bool = False) -> StoredTexts | None:
    row = await tx.fetchrow(
        "SELECT profile_id, profile_version, offer_text, seek_text FROM enrichment.profile_texts WHERE user_id = $1"
        + (" FOR UPDATE" if lock else ""),
        user_id,
    )
    if row is None:
        return None
    texts = ProfileTexts(row["offer_text"], row["seek_text"])
    return StoredTexts(str(row["profile_id"]), row["profile_version"], texts)


async def save_texts(tx: Tx, user_id: str, profile_id: str, version: int, texts: ProfileTexts) -> None:
    await tx.execute(
        """
        INSERT INTO enrichment.profile_texts (user_id, profile_id, profile_version, offer_text, seek_text)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (user_id) DO UPDATE SET profile_id = $2, profile_version = $3, offer_text = $4,
          seek_text = $5, updated_at = now()
        """,
        user_id,
        profile_id,
        version,
        texts.offer,
        texts.seek,
    )


async def has_vectors(tx: Tx, user_id: str, model_id: str, version: int) -> bool:
    """The model embedded the user's texts of profile `version`."""
    return bool(
        await tx.fetchval(
            "SELECT EXISTS (SELECT 1 FROM enrichment.profile_vectors"
            " WHERE user_id = $1 AND model_id = $2 AND profile_version = $3)",
            user_id,
            model_id,
            version,
        )
    )


async def save_vectors(
    tx: Tx, user_id: str, model_id: str, dimensions: int, version: int, vectors: dict[str, list[float]]
) -> None:
    """The model's vectors of the user at `version`, one per kind; an empty one deletes that kind."""
    for kind, vector in vectors.items():
        if not vector:
            await tx.execute(
                "DELETE FROM enrichment.profile_vectors WHERE user_id = $1 AND model_id = $2 AND kind = $3",
                user_id,
                model_id,
                kind,
            )
            continue
        await tx.execute(
            """
            INSERT INTO enrichment.profile_vectors (user_id, kind, model_id, dimensions, embedding, profile_version)
            VALUES ($1, $2, $3, $4, $5::real[]::vector, $6)
            ON CONFLICT (user_id, model_id, kind) DO UPDATE SET dimensions = $4, embedding = $5::real[]::vector,
              profile_version = $6, updated_at = now()
            """,
            user_id,
            kind,
            model_id,
            dimensions,
            vector,
            version,
        )


async def set_vectors_version(tx: Tx, user_id: str, model_id: str, version: int) -> None:
    """The model's vectors stand for `version` too (its embedded texts did not change)."""
    await tx.execute(
        "UPDATE enrichment.profile_vectors SET profile_version = $3 WHERE user_id = $1 AND model_id = $2",
        user_id,
        model_id,
        version,
    )


async def profiles_due(tx: Tx, model_id: str, limit: int) -> list[str]:
    """Users whose newest embedded texts have no vector of `model_id` yet (any caller may ask:
    ids only, from a SECURITY DEFINER function)."""
    rows = await tx.fetch("SELECT user_id FROM enrichment.profiles_due($1, $2) AS user_id", model_id, limit)
    return [str(row["user_id"]) for row in rows]


async def get_vectors(tx: Tx, user_id: str) -> list[dict]:
    rows = await tx.fetch(
        """
        SELECT kind, model_id, dimensions, embedding::real[] AS embedding, profile_version, updated_at
        FROM enrichment.profile_vectors WHERE user_id = $1 ORDER BY model_id, kind
        """,
        user_id,
    )
    return [dict(row) for row in rows]


async def enter_paging(tx: Tx) -> None:
    """Declares this transaction a service's paging of every user's vectors (RLS)."""
    await tx.execute("SELECT set_config('app.paging', 'on', true)")


async def page_vectors(tx: Tx, model_id: str, after: str | None, users: int) -> list[dict]:
    """The model's vectors of the next `users` users after `after`, in user id order (inside
    enter_paging): one row per user and kind."""
    rows = await tx.fetch(
        """
        WITH page AS (
          SELECT DISTINCT user_id FROM enrichment.profile_vectors
          WHERE model_id = $1 AND ($2::uuid IS NULL OR user_id > $2) ORDER BY user_id LIMIT $3
        )
        SELECT v.user_id, v.kind, v.dimensions, v.embedding::real[] AS embedding, v.profile_version
        FROM enrichment.profile_vectors v JOIN page USING (user_id)
        WHERE v.model_id = $1 ORDER BY v.user_id, v.kind
        """,
        model_id,
        after,
        users,
    )
    return [dict(row) for row in rows]


async def export_user(tx: Tx, user_id: str) -> dict:
    """The sections as stored (services/common/json_mapping.py maps them): the embedded texts and
    the vectors (with their model and version), the jobs (without their documents), suggestions
    (rows: services.enrichment.api.export_user answers them as the API does) and imported GitHub data."""
    texts = await get_texts(tx, user_id)
    jobs = await tx.fetch(
        f"SELECT {_JOB_COLUMNS} FROM enrichment.jobs WHERE user_id = $1 ORDER BY created_at", user_id
    )
    suggestions = await tx.fetch(
        f"SELECT {_SUGGESTION_COLUMNS} FROM enrichment.suggestions WHERE user_id = $1 ORDER BY name", user_id
    )
    github = await tx.fetchrow(
        "SELECT login, job_id, data, imported_at FROM enrichment.github_imports WHERE user_id = $1", user_id
    )
    return {
        "jobs": jobs,
        "suggestions": suggestions,
        "github_import": dict(github) if github else None,
        "embedded_texts": []
        if texts is None
        else [
            {
                "profile_id": texts.profile_id,
                "profile_version": texts.profile_version,
                "offer_text": texts.texts.offer,
                "seek_text": texts.texts.seek,
            }
        ],
        "profile_vectors": [
            {
                "kind": row["kind"],
                "model_id": row["model_id"],
                "dimensions": row["dimensions"],
                "profile_version": row["profile_version"],
                "embedding": [float(value) for value in row["embedding"]],
                "update_time": row["updated_at"],
            }
            for row in await get_vectors(tx, user_id)
        ],
    }


async def delete_user(tx: Tx, user_id: str) -> dict[str, int]:
    """Erases everything the enrichment schema holds about the user; rows per table."""
    deleted = {}
    for table in ("profile_vectors", "profile_texts", "github_imports", "suggestions", "jobs"):
        status = await tx.execute(f"DELETE FROM enrichment.{table} WHERE user_id = $1", user_id)
        deleted[table] = rows_affected(status)
    return deleted
