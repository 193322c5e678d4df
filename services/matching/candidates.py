"""Candidate generation and ranking for one viewer: vector search both ways (what I seek
against what they offer, what they seek against what I offer), filters from the request and
from my must-have preferences, then the multi-factor ranking (ranking.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import numpy as np

from openhr.matching.v1 import matching_pb2
from openhr.profile.v1 import profile_pb2
from services.common import errors
from services.common.db import Database, Tx
from services.matching import ranking, store
from services.matching.index import IndexUnavailable, VectorIndex
from services.matching.ranking import Fit, Weights
from services.matching.store import Candidate, Filters, Viewer

MUST = profile_pb2.IMPORTANCE_MUST_HAVE


class SearchUnavailable(Exception):
    """Candidates cannot be generated now (index not loaded, vector search timed out)."""


@dataclass(frozen=True)
class Ranked:
    fit: Fit
    candidate: Candidate


def _names(enum, values) -> list[str]:
    return [enum.Name(v) for v in values]


def _combine(requested: list[str], must: list[str] | None) -> list[str] | None:
    """Both conditions hold: their intersection (empty: nobody); either alone; None: no condition."""
    if requested and must is not None:
        return [v for v in requested if v in must]
    return requested or must


def filters_for(me: ranking.Person, request: matching_pb2.ListMatchesRequest) -> Filters:
    """The request's filters and my must-have preferences, as SQL filters."""
    prefs = me.preferences
    P = profile_pb2

    def must(preference, values) -> list[str] | None:
        return list(values) if preference.importance == MUST and values else None

    roles = must(prefs.roles_sought, _names(P.Role, prefs.roles_sought.roles))
    stages = must(prefs.stage, _names(P.StartupStage, prefs.stage.stages))
    commitment = prefs.commitment.commitment
    commitments = must(prefs.commitment, [P.Commitment.Name(commitment)] if commitment else [])
    modes = must(prefs.work_mode, _names(P.WorkMode, prefs.work_mode.modes))
    return Filters(
        roles=_combine(_names(P.Role, request.roles), roles),
        stages=_combine(_names(P.StartupStage, request.stages), stages),
        commitments=_combine(_names(P.Commitment, request.commitments), commitments),
        work_modes=_combine(["WORK_MODE_REMOTE"] if request.remote_only else [], modes),
        skill_keys=sorted({store.skill_key(s) for s in request.skills}) or None,
        country_code=request.country_code,
    )


def search_queries(me: Viewer) -> list[tuple[str, np.ndarray]]:
    """The two searches of my candidate pool: what I seek against what they offer, what I offer
    against what they seek. Someone who says nothing of what they look for (no "looking for"
    text, roles or industries sought: no seek vector) searches offers with their own offer
    instead: people in their field, whom the ranking's complementarity then orders (what they
    bring that I lack first). Without it, two such people never met, and they only ever found
    people who state a seek. Likewise a missing offer is stood in for by the seek. The ranking's
    semantic factor uses only the seek-offer directions that exist (ranking.semantic_fit)."""
    seek = me.seek if me.seek is not None else me.offer
    offer = me.offer if me.offer is not None else me.seek
    return [("offer", seek), ("seek", offer)]


class Ranker:
    def __init__(
        self,
        db: Database,
        index: VectorIndex,
        *,
        model_id: str,
        weights: Weights,
        pool_size: int,
        search_timeout_ms: int,
    ) -> None:
        self._db, self._index, self.model_id = db, index, model_id
        self.weights, self._pool_size, self._timeout_ms = weights, pool_size, search_timeout_ms

    async def viewer(self, tx: Tx, user_id: str) -> Viewer:
        mine = await store.get_viewer(tx, self.model_id, user_id)
        if mine is None:
            raise errors.failed_precondition("your profile is not in discovery yet: create it, then retry")
        return mine

    async def people(self, tx: Tx, user_id: str, others: list[str]) -> tuple[Viewer, dict[str, Candidate]]:
        """The caller and the candidates among `others` the caller can see, with their cosines."""
        me = await self.viewer(tx, user_id)
        return me, await store.get_candidates(tx, self.model_id, others, me)

    async def _pool(self, tx: Tx, me: Viewer, filters: Filters) -> list[str]:
        user_id = me.candidate.person.user_id
        if me.offer is None and me.seek is None:
            return await store.recent(tx, user_id, self._pool_size, filters)
        found = await self._index.nearest(tx, user_id, search_queries(me), self._pool_size, filters)
        return list(dict.fromkeys(user for hits in found for user in hits))

    async def rank(self, user_id: str, request: matching_pb2.ListMatchesRequest) -> list[Ranked]:
        """Eligible candidates for `user_id`, best first."""
        try:
            async with self._db.transaction(user_id) as tx:
                await store.configure(tx, {"statement_timeout": str(self._timeout_ms), **self._index.settings})
                me = await self.viewer(tx, user_id)
                filters = filters_for(me.candidate.person, request)
                pool = await store.get_candidates(tx, self.model_id, await self._pool(tx, me, filters), me)
        except (IndexUnavailable, asyncpg.QueryCanceledError) as exc:
            raise SearchUnavailable from exc
        now, person = datetime.now(UTC), me.candidate.person
        scored = [(c.person, c.cosines) for c in pool.values()]
        fits = ranking.rank(person, scored, self.weights, now, request.min_score)
        if request.min_timezone_overlap_hours:
            wanted = request.min_timezone_overlap_hours
            hours = {f.user_id: ranking.timezone_overlap(person, pool[f.user_id].person, now)[2] for f in fits}
            fits = [f for f in fits if (hours[f.user_id] or 0) >= wanted]
        return [Ranked(f, pool[f.user_id]) for f in fits]

    async def pair(self, user_id: str, other_user_id: str) -> tuple[Candidate, Ranked]:
        """How `other_user_id` fits `user_id`; NOT_FOUND when hidden from the caller."""
        async with self._db.transaction(user_id) as tx:
            me, people = await self.people(tx, user_id, [other_user_id])
        them = people.get(other_user_id)
        if them is None or not them.discoverable:
            raise errors.not_found("profile")
        return me.candidate, Ranked(self.score(me.candidate, them), them)

    async def fresh(self, user_id: str, other_user_id: str) -> Ranked | None:
        """How a changed candidate ranks for `user_id` now; None when they are not eligible
        (hidden, excluded, filtered by my must-haves)."""
        async with self._db.transaction(user_id) as tx:
            me = await store.get_viewer(tx, self.model_id, user_id)
            if me is None:
                return None
            filters = filters_for(me.candidate.person, matching_pb2.ListMatchesRequest())
            if not await store.keep_eligible(tx, user_id, [other_user_id], filters):
                return None
            them = (await store.get_candidates(tx, self.model_id, [other_user_id], me)).get(other_user_id)
        now = datetime.now(UTC)
        if them is None or not ranking.meets_must_haves(me.candidate.person, them.person, now):
            return None
        return Ranked(self.score(me.candidate, them), them)

    def score(self, me: Candidate, them: Candidate) -> Fit:
        """`them` read for the viewer `me` (their cosines are with my vectors)."""
        return ranking.fit(me.person, them.person, self.weights, datetime.now(UTC), them.cosines)
