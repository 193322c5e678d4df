"""Deletes expired secrets in the background: refresh tokens, one-time link tokens and OAuth
states once they are past their grace period (`store.PURGE_AFTER`). Every replica runs it;
concurrent runs just find nothing left to delete."""

from __future__ import annotations

from services.common.db import Database
from services.common.retention import PURGE_EVERY, PeriodicPurge
from services.identity import store


class ExpiredSecretsPurge(PeriodicPurge):
    what = "expired secrets"

    def __init__(self, db: Database, *, every: float = PURGE_EVERY) -> None:
        super().__init__(every=every)
        self._db = db

    async def purge_once(self) -> dict[str, int]:
        async with self._db.transaction(None) as tx:
            return await store.purge_expired(tx)
