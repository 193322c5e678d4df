"""Matching at 100,000 profiles: ListMatches through Envoy (REST) at 1 and 32 in flight with the pgvector
index and with the FAISS index, recall@20 of each index against exact search, index build times, and a
full recompute (ranked top 20 for many users in a row).

The profiles: `tests/matching/population.py` generates varied founder profiles (archetype, headline,
skills, summary, what they look for, place, stage, pay, commitment). Embedding 200,000 texts here would
take most of an hour, so every distinct phrase is embedded once by the real model (all-MiniLM-L6-v2:
~3,000 headlines, skill lists, summaries and "looking for" texts) and a profile's offer vector is the
normalized sum of its headline, skill-list and (half-weighted) summary vectors; its seek vector is its
"looking for" text's own. Neighbourhoods therefore have the structure of real text (archetypes, industries,
products), which random vectors lack (they make every ANN index look broken). Rows and vectors are loaded
with COPY, as the read model's events would have written them; then the HNSW indexes are built.

    python -m bench --only matching                  # what `make bench` runs for matching
    python -m bench --only matching --quick          # 5,000 profiles, short cells
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from dataclasses import dataclass

import asyncpg
import numpy as np
from pgvector.asyncpg import register_vector

from bench.http1 import Http1Client
from deploy.local.ephemeral import Mesh, serving
from openhr.matching.v1 import matching_pb2
from openhr.profile.v1 import profile_pb2
from services.common.db import Database
from services.common.devkeys import user_id_for
from services.common.migrations import app_role
from services.enrichment.models import DEFAULT_MODEL as MODEL_ID
from services.enrichment.models import reference_model
from services.matching import store
from services.matching.app import MatchingSettings
from services.matching.candidates import Ranker
from services.matching.index import FaissIndex, PgVectorIndex
from services.matching.ranking import COSINE_FLOOR, COSINE_SPAN, Weights
from tests.matching.population import generate

DIMENSIONS = 384


@dataclass
class MatchingConfig:
    profiles: int = 100_000
    seconds: float = 10.0
    warmup_seconds: float = 2.0
    recall_users: int = 100
    recompute_users: int = 10_000
    # FAISS does not serve (see the results): its recompute is measured on fewer users.
    faiss_recompute_users: int = 500
    concurrencies: tuple[int, ...] = (1, 32)
    # Recall is also measured at these hnsw.ef_search values.
    ef_search_sweep: tuple[int, ...] = (40, 400)


def _email(i: int) -> str:
    return f"bench-match-{i}@example.com"


def _unit(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


# Each profile's vectors: its own phrases' vectors plus EXTRA other real phrases at EXTRA_WEIGHT each and a
# little Gaussian noise (NOISE of a unit vector's length), normalized. The phrases alone repeat (a "looking
# for" text is one of a few hundred), and copies of one vector make both the recall measure (which of 200
# equal vectors is "the" 20th?) and HNSW graphs (islands of copies) degenerate; real people's texts differ.
EXTRA, EXTRA_WEIGHT, NOISE = 2, 0.35, 0.1


def compose(vectors: np.ndarray, rows: np.ndarray, weights: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Unit vectors: sum of weights[j] * vectors[rows[:, j]], EXTRA random phrases and noise."""
    total = sum(w * vectors[rows[:, j]] for j, w in enumerate(weights))
    extra = rng.integers(0, len(vectors), size=(len(rows), EXTRA))
    total = total + EXTRA_WEIGHT * vectors[extra].sum(axis=1)
    noise = rng.standard_normal(total.shape).astype(np.float32)
    total = total + NOISE * noise / np.sqrt(vectors.shape[1])
    return _unit(total)


def synthesize(count: int, log) -> tuple[list[profile_pb2.Profile], np.ndarray, np.ndarray, int]:
    """Profiles with ids and skills, their offer and seek vectors, and how many texts were embedded."""
    people = generate(count, seed=11)
    parts = []
    for g in people:
        skills = ", ".join(sorted(name for name, _c, _p in g.skills))
        parts.append((g.profile.headline, f"Skills: {skills}.", g.profile.summary, g.profile.looking_for))
    phrases = sorted({p for row in parts for p in row})
    log(f"  embedding {len(phrases):,} distinct phrases with {MODEL_ID}")
    started = time.perf_counter()
    model = reference_model(MODEL_ID)
    vectors = model.encode(phrases, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    log(f"  embedded in {time.perf_counter() - started:.1f}s")
    index = {p: i for i, p in enumerate(phrases)}
    rows = np.array([[index[p] for p in row] for row in parts])
    rng = np.random.default_rng(5)
    offer = compose(vectors, rows[:, :3], (1.0, 1.0, 0.5), rng)
    seek = compose(vectors, rows[:, 3:], (1.0,), rng)
    profiles = []
    for i, g in enumerate(people):
        profile = profile_pb2.Profile()
        profile.CopyFrom(g.profile)
        profile.user_id, profile.profile_id, profile.version = user_id_for(_email(i)), str(uuid.uuid4()), 1
        profile.skills.extend(profile_pb2.Skill(name=n, category=c, proficiency=p) for n, c, p in g.skills)
        profiles.append(profile)
    return profiles, offer, seek, len(phrases)


async def _connect(url: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(url)
    await register_vector(conn)
    # COPY is binary: jsonb's binary form is a version byte and the text.
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda value: b"\x01" + json.dumps(value).encode(),
        decoder=lambda data: json.loads(data[1:]),
        schema="pg_catalog",
        format="binary",
    )
    return conn


async def load_vectors(url: str, profiles, offer: np.ndarray, seek: np.ndarray, log) -> dict:
    """Replaces every vector (COPY), then builds both HNSW indexes again as the migrations defined
    them (faster than keeping them up to date row by row); returns timings in seconds and the
    index definitions."""
    conn = await _connect(url)
    try:
        definitions = dict(
            await conn.fetch(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'matching' AND indexname = ANY($1)",
                [f"vectors_{column}" for column in store.VECTOR_COLUMNS],
            )
        )
        await conn.execute("DROP INDEX IF EXISTS matching.vectors_offer, matching.vectors_seek")
        await conn.execute("DELETE FROM matching.vectors")
        started = time.perf_counter()
        await conn.copy_records_to_table(
            "vectors",
            schema_name="matching",
            columns=["user_id", "model_id", "profile_version", "discoverable", "offer", "seek"],
            records=[(uuid.UUID(p.user_id), MODEL_ID, 1, True, offer[i], seek[i]) for i, p in enumerate(profiles)],
        )
        timings: dict = {"copy_vectors_s": round(time.perf_counter() - started, 1)}
        await conn.execute("SET maintenance_work_mem = '1GB'")
        for name, definition in sorted(definitions.items()):
            started = time.perf_counter()
            await conn.execute(definition)
            timings[f"hnsw_{name.removeprefix('vectors_')}_s"] = round(time.perf_counter() - started, 1)
            log(f"  {definition}: {time.perf_counter() - started:.1f}s")
        await conn.execute("ANALYZE matching.vectors")
        return timings | {"index_definitions": sorted(definitions.values())}
    finally:
        await conn.close()


async def load(url: str, profiles, offer: np.ndarray, seek: np.ndarray, log) -> dict:
    """COPY the read model's rows, then its vectors and indexes; returns timings in seconds."""
    conn = await _connect(url)
    try:
        started = time.perf_counter()
        columns = ["user_id", *store._CANDIDATE_COLUMNS]
        records = [(uuid.UUID(p.user_id), *store.candidate_values(p)) for p in profiles]
        records = [(r[0], uuid.UUID(r[1]), *r[2:]) for r in records]
        await conn.copy_records_to_table("candidates", schema_name="matching", columns=columns, records=records)
        await conn.execute("ANALYZE matching.candidates")
        copied = round(time.perf_counter() - started, 1)
    finally:
        await conn.close()
    log(f"  {len(profiles):,} rows copied in {copied}s; the vectors and their HNSW indexes next")
    return {"copy_rows_s": copied, **await load_vectors(url, profiles, offer, seek, log)}


async def closed_loop(host: str, port: int, tokens: list[str], concurrency: int, seconds: float, warmup: float):
    clients = [
        Http1Client(host, port, {"authorization": f"Bearer {tokens[w % len(tokens)]}", "accept": "application/json"})
        for w in range(concurrency)
    ]
    await asyncio.gather(*(c.connect() for c in clients))
    latencies: list[float] = []
    errors = 0
    recording = False

    async def worker(client: Http1Client, stop: float) -> None:
        nonlocal errors
        while time.perf_counter() < stop:
            started = time.perf_counter()
            status, _body = await client.get("/v1/matches?pageSize=20")
            if recording:
                if status == 200:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors += 1

    await asyncio.gather(*(worker(c, time.perf_counter() + warmup) for c in clients))
    recording = True
    started = time.perf_counter()
    await asyncio.gather(*(worker(c, started + seconds) for c in clients))
    elapsed = time.perf_counter() - started
    for client in clients:
        client.close()
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 2) if latencies else None,
        "errors": errors,
    }


def exact_threshold(matrix: np.ndarray, query: np.ndarray, eligible: np.ndarray, k: int) -> float:
    """The k-th best exact score among the eligible rows."""
    scores = np.where(eligible, matrix @ query, -np.inf)
    return float(np.partition(scores, -k)[-k])


# What the ranking can tell apart: semantic fit is flat above this cosine (ranking.semantic_fit).
RANKING_CEILING = COSINE_FLOOR + COSINE_SPAN


async def recall(db: Database, index, profiles, offer, seek, users: list[int], k: int = 20,
                 filtered: bool = False) -> dict[str, float]:  # fmt: skip
    """Mean recall@k of `index` against exact search, both directions (seek->offer, offer->seek).

    `exact`: a hit is a returned candidate whose exact cosine reaches the k-th best exact cosine (so
    equal vectors tie rather than miss). `ranking`: the same, but at the ranking's resolution, where
    every cosine above RANKING_CEILING gives the same semantic fit: a miss there changes no score.
    `filtered`: the search asks for the role the user seeks (a must-have role preference or the
    request's `roles` filter), so exact search runs over those candidates only."""
    position = {p.user_id: i for i, p in enumerate(profiles)}
    roles = np.array([p.role for p in profiles])
    found: dict[str, list[float]] = {"exact": [], "ranking": []}
    short = 0
    for i in users:
        me = profiles[i].user_id
        eligible = np.ones(len(profiles), dtype=bool)
        filters = store.Filters()
        if filtered:
            sought = profiles[i].preferences.roles_sought.roles[0]
            eligible = roles == sought
            filters = store.Filters(roles=[profile_pb2.Role.Name(sought)])
        eligible[i] = False
        wanted = min(k, int(eligible.sum()))  # a role few people have: recall of what exists
        if not wanted:
            continue
        for column, query, matrix in (("offer", seek[i], offer), ("seek", offer[i], seek)):
            threshold = exact_threshold(matrix, query, eligible, wanted) - 1e-5
            async with db.transaction(me) as tx:
                await store.configure(tx, index.settings)
                [got] = await index.nearest(tx, me, [(column, query)], k, filters)
            cosines = [float(matrix[position[user]] @ query) for user in got]
            short += len(got) < wanted
            found["exact"].append(sum(c >= threshold for c in cosines) / wanted)
            found["ranking"].append(sum(c >= min(threshold, RANKING_CEILING) for c in cosines) / wanted)
    # `short`: searches that returned fewer than k (an iterative scan stopped by hnsw.max_scan_tuples).
    return {name: round(statistics.mean(values), 4) for name, values in found.items()} | {"short": short}


async def recompute(db: Database, index, profiles, users: list[int], concurrency: int = 4) -> float:
    """Seconds to rank the top 20 of every user in `users` (the nightly job's work), in process."""
    ranker = Ranker(
        db, index, model_id=MODEL_ID, weights=Weights(), pool_size=100, search_timeout_ms=60_000
    )
    queue = list(users)

    async def worker() -> None:
        while queue:
            i = queue.pop()
            ranked = await ranker.rank(profiles[i].user_id, matching_pb2.ListMatchesRequest())
            assert len(ranked) >= 20

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return round(time.perf_counter() - started, 1)


def restart_matching(mesh: Mesh, index: str) -> float:
    """Restarts the mesh's matching service with another index; seconds until it serves."""
    mesh.stop_process("matching")
    started = time.perf_counter()
    mesh.start_process("matching", mesh.config.commands()["matching"], env={"MATCHING_INDEX": index})
    while not serving(mesh.config.ports["matching"]):
        time.sleep(0.2)
    return round(time.perf_counter() - started, 1)


def _default(setting: str) -> int:
    return MatchingSettings.model_fields[setting].default


def pgvector_index(ef_search: int | None = None) -> PgVectorIndex:
    """The service's pgvector index with its default settings (MATCHING_HNSW_*), or another ef_search."""
    ef_search = _default("hnsw_ef_search") if ef_search is None else ef_search
    return PgVectorIndex(MODEL_ID, ef_search, _default("hnsw_max_scan_tuples"))


async def run_matching(mesh: Mesh, config: MatchingConfig, log) -> dict:
    log(f"matching: synthesizing {config.profiles:,} profiles")
    profiles, offer, seek, phrases = synthesize(config.profiles, log)
    timings = await load(mesh.config.database_url, profiles, offer, seek, log)
    tokens = [mesh.token(_email(i)) for i in range(0, config.profiles, max(1, config.profiles // 64))]
    host, port = "127.0.0.1", mesh.config.edge_port
    result = {"config": vars(config) | {"concurrencies": list(config.concurrencies)}, "phrases_embedded": phrases}
    result["config"]["ef_search"] = _default("hnsw_ef_search")
    result["config"]["max_scan_tuples"] = _default("hnsw_max_scan_tuples")
    result["build"] = timings
    db = Database(mesh.config.database_url, app_role=app_role(store.SCHEMA), pool_size=8)
    rng = np.random.default_rng(3)
    sample = [int(i) for i in rng.choice(config.profiles, size=config.recall_users, replace=False)]
    recompute_sample = [int(i) for i in rng.choice(config.profiles, size=config.recompute_users, replace=False)]
    try:
        indexes = {"pgvector": pgvector_index()}
        faiss = FaissIndex(db, MODEL_ID, DIMENSIONS)
        started = time.perf_counter()
        await faiss.load()
        result["build"]["faiss_load_s"] = round(time.perf_counter() - started, 1)
        indexes["faiss"] = faiss
        result["recall_at_20"] = {}
        sweep = {f"pgvector_ef{ef}": pgvector_index(ef) for ef in config.ef_search_sweep}
        for name, index in (*indexes.items(), *sweep.items()):
            for filtered in (False, True):
                key = f"{name}_filtered" if filtered else name
                result["recall_at_20"][key] = await recall(db, index, profiles, offer, seek, sample, filtered=filtered)
                log(f"  recall@20 {key}: {result['recall_at_20'][key]}")
        result["latency"] = {}
        for name in ("pgvector", "faiss"):
            if name == "faiss":
                result["build"]["faiss_service_start_s"] = restart_matching(mesh, "faiss")
            cells = {}
            for concurrency in config.concurrencies:
                cells[str(concurrency)] = await closed_loop(
                    host, port, tokens, concurrency, config.seconds, config.warmup_seconds
                )
                log(f"  ListMatches via Envoy, {name}, {concurrency} in flight: {cells[str(concurrency)]}")
            result["latency"][name] = cells
        restart_matching(mesh, "pgvector")
        result["recompute"] = {}
        for name, index in indexes.items():
            users = recompute_sample if name == "pgvector" else recompute_sample[: config.faiss_recompute_users]
            seconds = await recompute(db, index, profiles, users)
            result["recompute"][name] = {"users": len(users), "seconds": seconds}
            log(f"  recompute {len(users):,} users with {name}: {seconds}s")
    finally:
        await db.close()
    return result


def _goal(measure: str, value, goal: str, met: bool) -> str:
    return f"| {measure} | {value} | {goal} | {'yes' if met else 'no'} |"


def markdown(result: dict, machine_md: str) -> str:
    cfg, build, recall_ = result["config"], result["build"], result["recall_at_20"]
    pg, fa = result["latency"]["pgvector"], result["latency"]["faiss"]
    recompute_ = result["recompute"]["pgvector"]
    per_10k = recompute_["seconds"] * 10_000 / recompute_["users"]
    serving = recall_["pgvector"]
    lines = [
        "# Matching at scale",
        "",
        machine_md,
        "",
        "## Method",
        "",
        f"- {cfg['profiles']:,} generated profiles (`tests/matching/population.py`, seed 11). Vectors from the real "
        f"model: {result['phrases_embedded']:,} distinct phrases embedded once by all-MiniLM-L6-v2 "
        "(sentence-transformers on torch, the reference the served ONNX vectors are held to). "
        "Offer = headline + skill list + half the summary, seek = the \"looking for\" text, each plus "
        f"{EXTRA} more real phrases drawn at random at {EXTRA_WEIGHT} and Gaussian noise of {NOISE} of a unit "
        "vector's length, normalized: no two profiles share a vector (the phrases alone repeat, and hundreds of "
        "copies of one vector make recall ill-defined and HNSW graphs islands). Rows and vectors loaded with COPY; "
        f"then the HNSW indexes built as the migrations define them "
        f"(`{'`, `'.join(build['index_definitions'])}`; `maintenance_work_mem` 1 GB).",
        f"- ListMatches: `GET /v1/matches?pageSize=20` through Envoy (REST, jwt_authn), closed loop, "
        f"{len(cfg['concurrencies'])} loads, {cfg['seconds']} s per cell after {cfg['warmup_seconds']} s warm-up, "
        "64 users' tokens round robin; the matching service with MATCHING_INDEX=pgvector "
        f"(hnsw.ef_search {cfg['ef_search']}, iterative scan up to {cfg['max_scan_tuples']:,} rows), then restarted "
        "with faiss. Each call: one "
        "statement searching both directions (100 neighbours each, filters and exclusions in SQL), the 200 "
        "candidates' rows, the 4-factor ranking in Python, the snapshot written to Redis.",
        f"- Recall@20: {cfg['recall_users']} random users, both directions (their seek against every offer, their "
        "offer against every seek), the index's 20 nearest against exact search (numpy, all vectors). *exact*: "
        "a hit reaches the 20th best exact cosine. *ranking*: a hit reaches the lower of that and cosine "
        f"{RANKING_CEILING:g}, above which semantic fit is 1 for everyone (a miss there changes no score). "
        "*filtered*: the search asks for the role the user seeks (as a must-have role preference or the "
        "`roles` filter does), exact search runs over those candidates only.",
        f"- Recompute: `Ranker.rank` (what ListMatches runs) for {cfg['recompute_users']:,} random users in a row "
        f"with pgvector ({cfg['faiss_recompute_users']:,} with FAISS), 4 at a time, in the bench process against "
        "the same database.",
        "- Everything shares the machine: the load generator, Envoy, the services, Postgres and Redis.",
        "",
        "## Goals (issue 8)",
        "",
        "| measure | this run | goal | met |",
        "|---|---:|---:|---|",
        _goal("ListMatches p99, pgvector, 1 in flight", f"{pg['1']['p99_ms']} ms", "≤ 50 ms", pg["1"]["p99_ms"] <= 50),
        _goal("recall@20 of the serving index (exact ties)", serving["exact"], "≥ 0.95", serving["exact"] >= 0.95),
        _goal("recall@20 at the ranking's resolution", serving["ranking"], "≥ 0.95", serving["ranking"] >= 0.95),
        _goal(
            "recompute of 10,000 users"
            + ("" if recompute_["users"] == 10_000 else f" (from {recompute_['users']:,} users, scaled)"),
            f"{per_10k:.1f} s",
            "≤ 5 s",
            per_10k <= 5,
        ),
        "",
        "## Results",
        "",
        "| index | in flight | req/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, cells in result["latency"].items():
        for concurrency, cell in cells.items():
            lines.append(
                f"| {name} | {concurrency} | {cell['rps']} | {cell['p50_ms']} | {cell['p99_ms']} | {cell['errors']} |"
            )
    ratios = [
        f"{c} in flight: requests/s {pg[c]['rps'] / fa[c]['rps']:.2f}, p50 {pg[c]['p50_ms'] / fa[c]['p50_ms']:.2f}"
        for c in pg
        if fa[c]["rps"] and fa[c]["p50_ms"]
    ]
    lines += [
        "",
        "Ratios pgvector / FAISS: " + "; ".join(ratios) + ".",
        "",
        "| recall@20 | exact | ranking | filtered exact | filtered ranking | searches short of 20 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in [n for n in recall_ if not n.endswith("_filtered")]:
        plain, filtered = recall_[name], recall_[f"{name}_filtered"]
        label = f"pgvector, ef_search {cfg['ef_search']} (serving)" if name == "pgvector" else name
        lines.append(
            f"| {label} | {plain['exact']} | {plain['ranking']} | {filtered['exact']} | {filtered['ranking']} "
            f"| {plain['short'] + filtered['short']} |"
        )
    lines += [
        "",
        "| measure | pgvector (HNSW) | FAISS (exact, in process) |",
        "|---|---:|---:|",
        f"| index build | offer {build['hnsw_offer_s']} s + seek {build['hnsw_seek_s']} s (CREATE INDEX) | "
        f"{build['faiss_load_s']} s (loaded from pgvector) |",
        f"| recompute (users: seconds) | {recompute_['users']:,}: {recompute_['seconds']} s | "
        f"{result['recompute']['faiss']['users']:,}: {result['recompute']['faiss']['seconds']} s |",
        "",
        f"COPY of the rows: {build['copy_rows_s']} s, of the vectors: {build['copy_vectors_s']} s. "
        "A FAISS replica is NOT_SERVING until its index is "
        f"loaded: {build['faiss_service_start_s']} s from start to serving here.",
        "",
    ]
    return "\n".join(lines)
