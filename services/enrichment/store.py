"""SQL of the enrichment schema (asyncpg, inside transactions opened with the caller's id).

Vectors travel as real[] and are cast to pgvector's `vector` in SQL (no codec to register)."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.db import Tx
from services.enrichment.profile_texts import ProfileTexts

SCHEMA = "enrichment"


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


async def export_user(tx: Tx, user_id: str) -> dict:
    """JSON-ready sections: the embedded texts and the vectors (with their model and version)."""
    texts = await get_texts(tx, user_id)
    return {
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
                "update_time": row["updated_at"].isoformat(),
            }
            for row in await get_vectors(tx, user_id)
        ],
    }


async def delete_user(tx: Tx, user_id: str) -> dict[str, int]:
    vectors = await tx.execute("DELETE FROM enrichment.profile_vectors WHERE user_id = $1", user_id)
    texts = await tx.execute("DELETE FROM enrichment.profile_texts WHERE user_id = $1", user_id)
    return {"profile_vectors": int(vectors.split()[-1]), "profile_texts": int(texts.split()[-1])}
