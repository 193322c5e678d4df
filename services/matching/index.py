"""Nearest-neighbour search over the read model's offer and seek vectors, behind one interface:

- `PgVectorIndex`: pgvector's HNSW indexes in Postgres, the store of record. Filters and
  exclusions run in the same query; `hnsw.iterative_scan = relaxed_order` keeps the scan going
  until enough rows pass them (and RLS), else HNSW returns too few.
- `FaissIndex`: the same vectors in process (`faiss-cpu`, exact inner product on unit vectors,
  one OpenMP thread), loaded from pgvector at start and kept current by the read model's
  `matching.feed` events; its hits are then filtered in SQL, over-fetching until enough pass.

`candidates.py` asks either for the user ids nearest to a vector; ranking does the rest.
bench/results/matching.md says which serves (MATCHING_INDEX)."""

from __future__ import annotations

import asyncio
from typing import Protocol

import numpy as np
import structlog

from services.common.cancellation import raise_if_cancelled
from services.common.db import Database, Tx
from services.matching import store
from services.matching.store import Filters

log = structlog.get_logger("index")


class IndexUnavailable(Exception):
    """The index cannot answer now (not loaded yet)."""


# (column, query vector): search `column`'s vectors for those nearest to the query.
Query = tuple[str, np.ndarray]


class VectorIndex(Protocol):
    name: str
    # Settings for the transaction that searches (store.configure).
    settings: dict[str, str]

    async def nearest(self, tx: Tx, me: str, queries: list[Query], limit: int, filters: Filters) -> list[list[str]]:
        """For each query, the ids of the `limit` nearest eligible candidates, nearest first."""

    def changed(self, user_id: str) -> None:
        """The user's vectors or visibility changed (from a matching.feed event)."""

    async def reload(self) -> None:
        """The read model was rebuilt: start over from it."""

    async def check(self) -> None:
        """A health check: raises while the index cannot answer."""

    async def run(self) -> None:
        """Background upkeep until cancelled."""


class PgVectorIndex:
    name = "pgvector"

    def __init__(self, model_id: str, ef_search: int, max_scan_tuples: int) -> None:
        self._model_id = model_id
        # HNSW keeps scanning until LIMIT rows pass the filters and RLS (else it returns too few),
        # up to max_scan_tuples visited rows.
        self.settings = {
            "hnsw.iterative_scan": "relaxed_order",
            "hnsw.ef_search": str(ef_search),
            "hnsw.max_scan_tuples": str(max_scan_tuples),
        }

    async def nearest(self, tx: Tx, me: str, queries: list[Query], limit: int, filters: Filters) -> list[list[str]]:
        return await store.nearest(tx, self._model_id, me, queries, limit, filters)

    def changed(self, user_id: str) -> None:
        """Nothing to do: Postgres is the index."""

    async def reload(self) -> None:
        """Nothing to do: Postgres is the index."""

    async def check(self) -> None:
        """Postgres' own health check covers it."""

    async def run(self) -> None:
        """Nothing to keep up."""


class _Flat:
    """One exact inner-product index with user ids (faiss ids are ints: kept in two maps)."""

    def __init__(self, dimensions: int) -> None:
        import faiss

        self._faiss = faiss
        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimensions))
        self.ids: dict[str, int] = {}
        self.users: dict[int, str] = {}
        self._next = 0

    def remove(self, user_id: str) -> None:
        number = self.ids.pop(user_id, None)
        if number is not None:
            del self.users[number]
            self.index.remove_ids(np.array([number], dtype=np.int64))

    def add(self, user_ids: list[str], vectors: np.ndarray) -> None:
        numbers = np.arange(self._next, self._next + len(user_ids), dtype=np.int64)
        self._next += len(user_ids)
        for user_id, number in zip(user_ids, numbers, strict=True):
            self.ids[user_id] = int(number)
            self.users[int(number)] = user_id
        self.index.add_with_ids(vectors, numbers)

    def search(self, query: np.ndarray, k: int) -> list[tuple[float, str]]:
        scores, numbers = self.index.search(query.reshape(1, -1), k)
        return [(float(s), self.users[int(n)]) for s, n in zip(scores[0], numbers[0], strict=True) if n >= 0]


class FaissIndex:
    name = "faiss"
    settings: dict[str, str] = {}

    def __init__(self, db: Database, model_id: str, dimensions: int, *, page: int = 5000) -> None:
        import faiss

        faiss.omp_set_num_threads(1)
        self._db, self._model_id, self._dimensions, self._page = db, model_id, dimensions, page
        self._flats = {column: _Flat(dimensions) for column in store.VECTOR_COLUMNS}
        self._loaded = False
        self._pending: asyncio.Queue[str] = asyncio.Queue()
        self._lock = asyncio.Lock()

    @property
    def size(self) -> int:
        return self._flats["offer"].index.ntotal

    async def load(self) -> int:
        """Every discoverable user's vectors from pgvector (read as a service: RLS shows
        discoverable rows only); returns how many users were loaded."""
        flats = {column: _Flat(self._dimensions) for column in store.VECTOR_COLUMNS}
        after, count = None, 0
        while True:
            async with self._db.transaction(None) as tx:
                rows = await store.all_vectors(tx, self._model_id, after, self._page)
            if not rows:
                break
            for column, flat in flats.items():
                present = [row for row in rows if row[column] is not None]
                if present:
                    vectors = np.asarray([row[column] for row in present], dtype=np.float32)
                    await asyncio.to_thread(flat.add, [str(row["user_id"]) for row in present], vectors)
            count += len(rows)
            after = str(rows[-1]["user_id"])
        async with self._lock:
            self._flats, self._loaded = flats, True
        log.info("faiss index loaded", users=count)
        return count

    def changed(self, user_id: str) -> None:
        self._pending.put_nowait(user_id)

    async def reload(self) -> None:
        await self.load()

    async def check(self) -> None:
        if not self._loaded:
            raise IndexUnavailable("the FAISS index is loading")

    async def _refresh(self, user_id: str) -> None:
        async with self._db.transaction(None) as tx:
            row = await store.vectors_of(tx, self._model_id, user_id)
        async with self._lock:
            for column, flat in self._flats.items():
                flat.remove(user_id)
                if row is not None and row[column] is not None:
                    flat.add([user_id], np.asarray([row[column]], dtype=np.float32))

    async def run(self) -> None:
        """Loads the index (retrying while Postgres is unreachable), then applies changes."""
        while not self._loaded:
            raise_if_cancelled()
            try:
                await self.load()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("faiss load failed, will retry", error=type(exc).__name__)
                await asyncio.sleep(2.0)
        while True:
            user_id = await self._pending.get()
            try:
                await self._refresh(user_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Postgres blip: try again later
                log.warning("faiss refresh failed, will retry", error=type(exc).__name__)
                await asyncio.sleep(1.0)
                self._pending.put_nowait(user_id)

    async def nearest(self, tx: Tx, me: str, queries: list[Query], limit: int, filters: Filters) -> list[list[str]]:
        if not self._loaded:
            raise IndexUnavailable
        return [await self._nearest(tx, me, column, query, limit, filters) for column, query in queries]

    async def _nearest(
        self, tx: Tx, me: str, column: str, query: np.ndarray, limit: int, filters: Filters
    ) -> list[str]:
        flat = self._flats[column]
        fetch = limit * 4
        while True:
            async with self._lock:
                hits = await asyncio.to_thread(flat.search, np.asarray(query, dtype=np.float32), fetch)
            eligible = await store.keep_eligible(tx, me, [user for _score, user in hits], filters)
            kept = sorted(((-score, user) for score, user in hits if user in eligible))
            if len(kept) >= limit or fetch >= flat.index.ntotal:
                return [user for _score, user in kept[:limit]]
            fetch *= 4
