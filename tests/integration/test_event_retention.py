"""Outbox and inbox retention (services/common/retention.py): published outbox rows and processed
inbox keys older than the retention go, as the service's app role; unpublished rows and recent
ones stay."""

from __future__ import annotations

import uuid

import asyncpg

from deploy.local.ephemeral import Mesh
from services.common.db import Database
from services.common.migrations import app_role
from services.common.retention import EventRetention

DAY = 86400.0


async def test_old_published_events_and_old_inbox_keys_are_purged(mesh: Mesh) -> None:
    url = mesh.config.effective_database_url
    ids = {name: uuid.uuid4() for name in ("old_published", "new_published", "old_unpublished", "old_key", "new_key")}
    owner = await asyncpg.connect(url)
    try:
        await owner.executemany(
            "INSERT INTO profile.outbox (event_id, topic, payload, created_at, published_at) "
            "VALUES ($1, 'retention-test', '\\x00', now() - make_interval(secs => $2), "
            "CASE WHEN $3 THEN now() - make_interval(secs => $2) END)",
            [(ids["old_published"], 8 * DAY, True), (ids["new_published"], DAY, True)],
        )
        # Never published (Redis down for 8 days, say): kept whatever its age. The running relay
        # may publish it meanwhile, which makes it recent.
        await owner.execute(
            "INSERT INTO profile.outbox (event_id, topic, payload, created_at) "
            "VALUES ($1, 'retention-test', '\\x00', now() - interval '8 days')",
            ids["old_unpublished"],
        )
        await owner.executemany(
            "INSERT INTO profile.inbox (event_id, processed_at) VALUES ($1, now() - make_interval(secs => $2))",
            [(ids["old_key"], 8 * DAY), (ids["new_key"], DAY)],
        )
        db = Database(url, app_role=app_role("profile"), pool_size=1, application_name="retention-test")
        try:
            deleted = await EventRetention(db, "profile", older_than=7 * DAY).purge_once(batch=1)
        finally:
            await db.close()
        assert deleted["outbox"] >= 1 and deleted["inbox"] >= 1
        outbox = {row["event_id"] for row in await owner.fetch("SELECT event_id FROM profile.outbox")}
        inbox = {row["event_id"] for row in await owner.fetch("SELECT event_id FROM profile.inbox")}
    finally:
        await owner.close()
    assert ids["old_published"] not in outbox
    assert {ids["new_published"], ids["old_unpublished"]} <= outbox
    assert ids["old_key"] not in inbox and ids["new_key"] in inbox
