"""StreamMatchFeed: the caller's top candidates (a snapshot), the mutual matches missed since
a resume cursor, an end-of-snapshot marker, then live events from "matching.feed": new mutual
matches of the caller, candidates that entered (or moved within) the top, candidates that left
discovery; heartbeats while nothing happens.

Every replica reads the whole "matching.feed" stream once (StreamFanout, one key for all) and
each open feed judges what concerns it: a changed candidate is scored against the caller and
sent when it would rank among what the feed shows."""

from __future__ import annotations

from collections.abc import AsyncIterator

from google.protobuf import timestamp_pb2

from openhr.matching.v1 import matching_pb2
from services.common import errors
from services.common.db import Database
from services.common.fanout import StreamFanout, events_or_heartbeats
from services.matching import cards, store
from services.matching.candidates import Ranker, SearchUnavailable

EVERYONE = "*"


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


def parse_cursor(cursor: str) -> int | None:
    """The match sequence number a resuming client saw last; None when not resuming."""
    if not cursor:
        return None
    try:
        value = int(cursor)
    except ValueError:
        raise errors.invalid_field("resume_cursor", "is not a cursor this service issued") from None
    if value < 0:
        raise errors.invalid_field("resume_cursor", "is not a cursor this service issued")
    return value


class MatchFeed:
    def __init__(self, db: Database, ranker: Ranker, changes: StreamFanout, heartbeat: float) -> None:
        self._db, self._ranker, self._changes, self._heartbeat = db, ranker, changes, heartbeat

    async def stream(
        self, me: str, size: int, resume_after: int | None
    ) -> AsyncIterator[matching_pb2.StreamMatchFeedResponse]:
        Response = matching_pb2.StreamMatchFeedResponse
        # Subscribe before the snapshot, so that no change between the two is missed.
        async with self._changes.subscribe(EVERYONE) as changes:
            try:
                top = (await self._ranker.rank(me, matching_pb2.ListMatchesRequest()))[:size]
            except SearchUnavailable:
                raise errors.unavailable("candidates cannot be ranked right now, retry later") from None
            shown = {r.fit.user_id: r.candidate.profile_id for r in top}
            floor = top[-1].fit.score if len(top) == size else 0.0
            for ranked in top:
                yield Response(candidate=cards.card(ranked))
            if resume_after is not None:
                async with self._db.transaction(me) as tx:
                    missed = await store.matches_after(tx, me, resume_after)
                for row in missed:
                    yield Response(mutual_match=cards.match(row), cursor=str(row.seq))
            yield Response(end_of_snapshot=matching_pb2.SnapshotEnd())
            async for event in events_or_heartbeats(changes, self._heartbeat):
                if event is None:
                    yield Response(heartbeat=_now())
                    continue
                change = event.match_feed_changed
                kind = change.WhichOneof("change")
                if kind == "mutual_match" and me in change.mutual_match.user_ids:
                    shown.pop(next(u for u in change.mutual_match.user_ids if u != me), None)
                    yield Response(mutual_match=change.mutual_match, cursor=str(change.match_seq))
                elif kind == "removed_user_id" and change.removed_user_id in shown:
                    yield Response(removed_profile_id=shown.pop(change.removed_user_id))
                elif kind == "updated_user_id" and change.updated_user_id != me:
                    ranked = await self._ranker.fresh(me, change.updated_user_id)
                    if ranked is not None and ranked.fit.score >= floor:
                        shown[change.updated_user_id] = ranked.candidate.profile_id
                        yield Response(candidate=cards.card(ranked))
                    elif ranked is None and change.updated_user_id in shown:
                        yield Response(removed_profile_id=shown.pop(change.updated_user_id))
