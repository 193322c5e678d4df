"""Likes, passes and mutual matches.

A decision is final and idempotent: the same one again is a no-op, the other one is refused.
A like of someone who liked the caller creates the pair's match. Both users may like at the
same moment on two replicas: an advisory lock on the pair serializes their transactions (the
second sees the first's like), the match id is fixed by the pair (uuid5) and unique, and the
MatchCreated event is written only by the transaction that inserted the match."""

from __future__ import annotations

from dataclasses import dataclass

from services.common import errors
from services.common.db import Database
from services.common.logging import current_request_id
from services.common.outbox import add_event, new_event
from services.matching import cards, store
from services.matching.candidates import Ranker
from services.matching.readmodel import FEED_TOPIC, SERVICE

LIKE, PASS = "like", "pass"
MATCHING_TOPIC = "matching"


@dataclass(frozen=True)
class Outcome:
    match: store.MatchRow | None


class Decisions:
    def __init__(self, db: Database, ranker: Ranker) -> None:
        self._db, self._ranker = db, ranker

    async def _target(self, tx, me: str, profile_id: str) -> str:
        target = await store.user_of_profile(tx, profile_id)
        if target is None:
            raise errors.not_found("profile")
        if target == me:
            raise errors.failed_precondition("you cannot like or pass on your own profile")
        return target

    async def decide(self, me: str, profile_id: str, kind: str) -> Outcome:
        async with self._db.transaction(me) as tx:
            target = await self._target(tx, me, profile_id)
            await store.lock_pair(tx, me, target)
            previous = await store.decision(tx, me, target)
            if previous is not None and previous != kind:
                said = "liked" if previous == LIKE else "passed on"
                raise errors.failed_precondition(f"you already {said} this profile; a decision is final")
            if previous is None:
                await store.add_decision(tx, me, target, kind)
            if kind == PASS:
                return Outcome(None)
            match = await store.get_match(tx, me, target)
            if match is not None or await store.decision(tx, target, me) != LIKE:
                return Outcome(match)
            viewer, people = await self._ranker.people(tx, me, [target])
            score = self._ranker.score(viewer.candidate, people[target]).score if target in people else 0.0
            match = await store.insert_match(tx, me, target, score)
            if match is None:  # lost a race the lock should prevent: the other transaction announced it
                return Outcome(await store.get_match(tx, me, target))
            await self._announce(tx, me, match)
            return Outcome(match)

    @staticmethod
    async def _announce(tx, me: str, match: store.MatchRow) -> None:
        request_id = current_request_id()
        created = new_event(SERVICE, me, request_id)
        created.match_created.match_id = match.match_id
        created.match_created.user_ids.extend(match.user_ids)
        created.match_created.score = match.score
        await add_event(tx, store.SCHEMA, MATCHING_TOPIC, created)
        feed = new_event(SERVICE, me, request_id)
        feed.match_feed_changed.mutual_match.CopyFrom(cards.match(match))
        feed.match_feed_changed.match_seq = match.seq
        await add_event(tx, store.SCHEMA, FEED_TOPIC, feed)
