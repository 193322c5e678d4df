"""Helpers of the matching suites: a population created through the real profile API (the
enrichment service embeds it with the real model), events as their producers publish them, and
conditions to wait on."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg
import numpy as np
from redis.asyncio import Redis

from deploy.local.ephemeral import Mesh
from openhr.profile.v1 import profile_pb2, profile_pb2_grpc
from services.common.db import Database
from services.common.event_auth import EventSigner
from services.common.migrations import app_role
from services.common.outbox import OutboxRelay, add_event, new_event
from tests.matching.population import Generated
from tests.users import User, new_user

MODEL_ID = "all-MiniLM-L6-v2"


@dataclass
class Member:
    user: User
    profile_id: str
    generated: Generated
    version: int = 0

    @property
    def user_id(self) -> str:
        return self.user.user_id


async def create_member(mesh: Mesh, profiles: profile_pb2_grpc.ProfileServiceStub, generated: Generated) -> Member:
    """Creates the profile and adds its skills through the profile service, as the new user."""
    user = new_user(mesh, f"match-{generated.archetype}")
    created = await profiles.CreateProfile(
        profile_pb2.CreateProfileRequest(profile=generated.profile), metadata=user.metadata, timeout=30
    )
    for name, _category, level in generated.skills:
        await profiles.AddSkill(
            profile_pb2.AddSkillRequest(profile_id=created.profile.profile_id, name=name, proficiency=level),
            metadata=user.metadata,
            timeout=30,
        )
    return Member(user, created.profile.profile_id, generated, version=created.profile.version + len(generated.skills))


async def publish_embeddings(
    mesh: Mesh, members: list[Member], vectors: dict[str, tuple[np.ndarray, np.ndarray]]
) -> list[str]:
    """ProfileEmbedded events for the members (e.g. stale ones), through the enrichment schema's
    outbox and the kit's relay, as the enrichment service publishes them. Returns their ids."""
    db = Database(mesh.config.database_url, app_role=app_role("enrichment"), pool_size=2)
    redis = Redis.from_url(mesh.redis.url)
    event_ids = []
    try:
        for member in members:
            offer, seek = vectors[member.user_id]
            async with db.transaction(member.user_id) as tx:
                event = new_event("enrichment", member.user_id)
                embedded = event.profile_embedded
                embedded.profile_id, embedded.model_id = member.profile_id, MODEL_ID
                embedded.profile_version, embedded.dimensions = member.version, len(offer)
                embedded.offer_embedding.extend(offer.tolist())
                embedded.seek_embedding.extend(seek.tolist())
                await add_event(tx, "enrichment", "enrichment", event)
            event_ids.append(event.event_id)
        relay = OutboxRelay(db, redis, "enrichment", EventSigner(mesh.config.data_dir / "service-keys", "enrichment"))
        while await relay.publish_batch():
            pass  # until the outbox is empty
    finally:
        await redis.aclose()
        await db.close()
    return event_ids


async def handled(db: asyncpg.Pool, event_id: str) -> bool:
    """Matching consumed the event (its inbox has it)."""
    return await db.fetchval("SELECT EXISTS (SELECT 1 FROM matching.inbox WHERE event_id = $1)", uuid.UUID(event_id))


async def in_read_model(db: asyncpg.Pool, members: list[Member]) -> bool:
    """Every member's newest profile and vectors reached matching's read model."""
    rows = await db.fetch(
        "SELECT c.user_id, c.profile_version AS version, v.profile_version AS vectors_version "
        "FROM matching.candidates c JOIN matching.vectors v USING (user_id) WHERE c.user_id = ANY($1::uuid[])",
        [m.user_id for m in members],
    )
    seen = {str(r["user_id"]): (r["version"], r["vectors_version"]) for r in rows}
    return all(seen.get(m.user_id) == (m.version, m.version) for m in members)
