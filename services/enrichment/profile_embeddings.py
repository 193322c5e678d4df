"""Profile embeddings: recomputed on ProfileChanged, re-embedded in the background when the
configured model changes, published as ProfileEmbedded (topic "enrichment").

Events arrive out of order and more than once: an event is handled once (inbox), and only if
its profile version is newer than the one stored; vectors are recomputed only when the
embedded texts changed. Embedding runs between two short transactions (decide, then write),
so no connection is held while the model works; the write re-checks the version under a row
lock, so a newer version that overtook this one always wins."""

from __future__ import annotations

import asyncio

import numpy as np
import structlog

from openhr.events.v1 import events_pb2
from services.common.cancellation import raise_if_cancelled
from services.common.consumer import first_delivery
from services.common.db import Database, Tx
from services.common.outbox import add_event, new_event
from services.enrichment import store
from services.enrichment.embedder import Embedder
from services.enrichment.profile_texts import ProfileTexts, profile_texts

log = structlog.get_logger("profile_embeddings")
SERVICE = "enrichment"
TOPIC = "enrichment"


class ProfileEmbeddings:
    def __init__(self, db: Database, embedder: Embedder, *, backfill_interval: float = 30.0, backfill_batch: int = 32):
        self._db, self._embedder = db, embedder
        self._interval, self._batch = backfill_interval, backfill_batch

    async def _vectors(self, texts: ProfileTexts) -> dict[str, list[float]]:
        """Kind -> unit vector, an empty list for a kind whose text is empty."""
        kinds = [kind for kind, text in texts.by_kind().items() if text]
        embedded = await self._embedder.embed([texts.by_kind()[kind] for kind in kinds]) if kinds else np.zeros(0)
        vectors = {kind: [] for kind in texts.by_kind()}
        for kind, vector in zip(kinds, embedded, strict=True):
            vectors[kind] = vector.tolist()
        return vectors

    async def _publish(
        self, tx: Tx, user_id: str, profile_id: str, version: int, vectors: dict[str, list[float]]
    ) -> None:
        event = new_event(SERVICE, user_id)
        embedded = event.profile_embedded
        embedded.profile_id, embedded.profile_version = profile_id, version
        embedded.model_id, embedded.dimensions = self._embedder.model_id, self._embedder.dimensions
        embedded.offer_embedding.extend(vectors["offer"])
        embedded.seek_embedding.extend(vectors["seek"])
        await add_event(tx, store.SCHEMA, TOPIC, event)

    async def on_profile_event(self, event: events_pb2.Event) -> None:
        """The consumer of topic "profile"."""
        if event.WhichOneof("payload") != "profile_changed":
            return
        profile = event.profile_changed.profile
        user_id, version, texts = event.user_id, profile.version, profile_texts(profile)
        model_id = self._embedder.model_id
        async with self._db.transaction(user_id) as tx:
            stored = await store.get_texts(tx, user_id)
            if stored is not None and stored.profile_version >= version:
                await first_delivery(tx, store.SCHEMA, event.event_id)
                return  # an older version, or one handled already
            unchanged = stored is not None and stored.texts == texts
            if unchanged and await store.has_vectors(tx, user_id, model_id, stored.profile_version):
                # Nothing embedded changed: the vectors stand for this version too.
                if await first_delivery(tx, store.SCHEMA, event.event_id):
                    await store.save_texts(tx, user_id, profile.profile_id, version, texts)
                    await store.set_vectors_version(tx, user_id, model_id, version)
                return
        vectors = await self._vectors(texts)
        async with self._db.transaction(user_id) as tx:
            stored = await store.get_texts(tx, user_id, lock=True)
            if stored is not None and stored.profile_version >= version:
                return  # overtaken by a newer version while embedding
            if not await first_delivery(tx, store.SCHEMA, event.event_id):
                return
            await store.save_texts(tx, user_id, profile.profile_id, version, texts)
            await store.save_vectors(tx, user_id, model_id, self._embedder.dimensions, version, vectors)
            await self._publish(tx, user_id, profile.profile_id, version, vectors)

    async def reembed(self, user_id: str) -> bool:
        """The stored texts of the user with the configured model; False if there was nothing to embed."""
        async with self._db.transaction(user_id) as tx:
            stored = await store.get_texts(tx, user_id)
        if stored is None or not (stored.texts.offer or stored.texts.seek):
            return False
        vectors = await self._vectors(stored.texts)
        async with self._db.transaction(user_id) as tx:
            current = await store.get_texts(tx, user_id, lock=True)
            if current is None or current.profile_version != stored.profile_version:
                return True  # changed meanwhile: the consumer embeds the new version
            model_id, dimensions = self._embedder.model_id, self._embedder.dimensions
            await store.save_vectors(tx, user_id, model_id, dimensions, stored.profile_version, vectors)
            await self._publish(tx, user_id, stored.profile_id, stored.profile_version, vectors)
        return True

    async def backfill_once(self) -> int:
        """Embeds every profile that has no vector of the configured model for its newest
        version (after a model change: old vectors keep serving until then). Returns how many."""
        nothing_to_embed: set[str] = set()  # profiles without any embedded text stay due
        done = 0
        while True:
            async with self._db.transaction(None) as tx:
                due = await store.profiles_due(tx, self._embedder.model_id, self._batch + len(nothing_to_embed))
            todo = [user_id for user_id in due if user_id not in nothing_to_embed]
            if not todo:
                return done
            for user_id in todo:
                if await self.reembed(user_id):
                    done += 1
                else:
                    nothing_to_embed.add(user_id)

    async def run_backfill(self) -> None:
        """Background loop: a pass at start, then every `backfill_interval` seconds."""
        while True:
            raise_if_cancelled()
            try:
                done = await self.backfill_once()
                if done:
                    log.info("profiles re-embedded", model=self._embedder.model_id, profiles=done)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("re-embedding failed, will retry", error=type(exc).__name__)
            await asyncio.sleep(self._interval)
