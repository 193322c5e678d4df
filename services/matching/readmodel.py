"""Keeps the candidate read model current from events, and rebuilds it from scratch.

Events (at least once, no order across users or topics: a consumer group hands them to any
replica): ProfileChanged (topic "profile"), ProfileEmbedded ("enrichment"), UserDeleted
("identity"), ConversationOpened and ConversationBlocked ("messaging"). Each is applied once (inbox) in a transaction
as the user it is about; stale ones lose to the stored version (profile `version`, embeddings'
`profile_version`). Every change of a candidate is announced on "matching.feed", which keeps
the in-process index and the open match feeds of every replica current.

The rebuild reads every discoverable profile through the profile service's internal paged RPC
(streams are trimmed and Redis may be lost) and the stored embeddings through the enrichment
service's, as this service (a service token), and replaces the read model's rows."""

from __future__ import annotations

import grpc
import structlog

from openhr.enrichment.v1 import enrichment_pb2, enrichment_pb2_grpc
from openhr.events.v1 import events_pb2
from openhr.profile.v1 import profile_pb2, profile_pb2_grpc
from services.common.consumer import first_delivery
from services.common.db import Database, Tx
from services.common.outbox import add_event, new_event
from services.matching import store

log = structlog.get_logger("readmodel")
SERVICE = "matching"
FEED_TOPIC = "matching.feed"
REBUILD_PAGE = 500
HANDLED = ("profile_changed", "profile_embedded", "user_deleted", "conversation_opened", "conversation_blocked")


async def announce(tx: Tx, user_id: str, *, removed: bool = False) -> None:
    """Tells every replica that the user's candidate entry changed (or left discovery)."""
    event = new_event(SERVICE, user_id)
    if removed:
        event.match_feed_changed.removed_user_id = user_id
    else:
        event.match_feed_changed.updated_user_id = user_id
    await add_event(tx, store.SCHEMA, FEED_TOPIC, event)


class ReadModel:
    def __init__(
        self,
        db: Database,
        *,
        model_id: str,
        dimensions: int,
        profiles: profile_pb2_grpc.ProfileInternalServiceStub,
        enrichment: enrichment_pb2_grpc.EnrichmentInternalServiceStub,
    ) -> None:
        self._db, self._model_id, self._dimensions = db, model_id, dimensions
        self._profiles, self._enrichment = profiles, enrichment

    # --- events ---

    async def apply_profile(self, tx: Tx, profile: profile_pb2.Profile) -> bool:
        written = await store.upsert_candidate(tx, profile.user_id, store.candidate_values(profile))
        if written:
            await announce(tx, profile.user_id, removed=profile.visibility == profile_pb2.VISIBILITY_PRIVATE)
        return written

    def _usable(self, embedded: events_pb2.ProfileEmbedded | enrichment_pb2.StoredProfileEmbedding) -> bool:
        """Vectors of another model (or size) are never compared with the served model's."""
        sizes = {len(v) for v in (embedded.offer_embedding, embedded.seek_embedding) if v}
        return embedded.model_id == self._model_id and sizes <= {self._dimensions} and bool(sizes)

    async def apply_embedding(
        self, tx: Tx, user_id: str, embedded: events_pb2.ProfileEmbedded | enrichment_pb2.StoredProfileEmbedding
    ) -> bool:
        """Stores the vectors when they are the served model's and newer; announces them."""
        if not self._usable(embedded):
            return False
        written = await store.upsert_vectors(
            tx,
            user_id,
            embedded.model_id,
            embedded.profile_version,
            list(embedded.offer_embedding) or None,
            list(embedded.seek_embedding) or None,
        )
        if written:
            await announce(tx, user_id)
        return written

    async def on_event(self, event: events_pb2.Event) -> None:
        """The handler of every topic matching consumes."""
        kind = event.WhichOneof("payload")
        if kind not in HANDLED:
            return
        async with self._db.transaction(event.user_id) as tx:
            if not await first_delivery(tx, store.SCHEMA, event.event_id):
                return
            if kind == "profile_changed":
                await self.apply_profile(tx, event.profile_changed.profile)
            elif kind == "profile_embedded":
                await self.apply_embedding(tx, event.user_id, event.profile_embedded)
            elif kind == "user_deleted":
                await store.delete_user(tx, event.user_id)
                await announce(tx, event.user_id, removed=True)
            elif kind == "conversation_opened":
                conversation = event.conversation_opened.conversation
                await store.set_conversation(tx, conversation.match_id, conversation.conversation_id)
            else:
                blocked = event.conversation_blocked
                await store.add_block(tx, blocked.blocker_user_id, blocked.blocked_user_id)

    # --- rebuild ---

    async def _profiles_pages(self):
        token = ""
        while True:
            page = await self._profiles.ListDiscoverableProfiles(
                profile_pb2.ListDiscoverableProfilesRequest(page_size=REBUILD_PAGE, page_token=token), timeout=30
            )
            yield page.profiles
            token = page.next_page_token
            if not token:
                return

    async def _embedding_pages(self):
        token = ""
        while True:
            page = await self._enrichment.ListProfileEmbeddings(
                enrichment_pb2.ListProfileEmbeddingsRequest(
                    model_id=self._model_id, page_size=REBUILD_PAGE, page_token=token
                ),
                timeout=30,
            )
            yield page.embeddings
            token = page.next_page_token
            if not token:
                return

    async def rebuild(self) -> tuple[int, int]:
        """Replaces the read model with what the profile and enrichment services hold now;
        returns (profiles, embeddings) loaded. Events keep applying meanwhile: whichever is
        newer wins, by version."""
        try:
            profiles = [p async for page in self._profiles_pages() for p in page]
            embeddings = [e async for page in self._embedding_pages() for e in page]
        except grpc.RpcError as exc:
            log.warning("rebuild could not read its sources", code=exc.code().name)
            raise
        async with self._db.transaction(None) as tx:
            await store.enter_rebuild(tx)
            await store.clear_read_model(tx)
            for profile in profiles:
                await self.apply_profile(tx, profile)
            for embedded in embeddings:
                await self.apply_embedding(tx, embedded.user_id, embedded)
        log.info("read model rebuilt", profiles=len(profiles), embeddings=len(embeddings))
        return len(profiles), len(embeddings)
