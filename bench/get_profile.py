"""GET profile by id through three paths, side by side in one run:

  envoy_rest   REST through Envoy: GET {edge}/v1/profiles/{id} (grpc_json_transcoder -> profile service)
  grpc_direct  gRPC straight to the profile service: ProfileService/GetProfile
  fastapi      the peer: FastAPI + asyncpg doing the same read, with the same per-address and per-user
               limits (the `limits` library on the mesh's Redis; bench/peer.py)

plus diagnostic paths that split the Envoy path's cost:

  grpc_envoy        gRPC through the same Envoy (router only, no transcoding, h2 downstream)
  envoy_rest_noauth REST through a second Envoy, the same rendered config minus jwt_authn and the
                    rate-limit filters (and what only they use): the edge's auth + rate-limit cost
  envoy_rest_httpx  the envoy_rest path driven by httpx instead of bench/http1.py (client overhead)
  fastapi_naive     the peer as a straightforward handler would be written (bench/peer.py, mode naive)

Interleaved: every round runs every path at every concurrency for the same time, path order rotated per
round, so machine noise lands on all paths alike; the report quotes medians across rounds. CPU seconds
per process group are sampled around every cell (bench/cpu.py)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import time
from dataclasses import dataclass

import asyncpg

from bench.cpu import CpuMeter
from bench.edge import ExtraEnvoy, without_auth_and_rate_limits
from bench.http1 import Http1Client, HttpError
from bench.load import GrpcSession, Http1Session, HttpxSession, run_cell, run_open_loop
from bench.peer import start_peer, stop_process
from bench.seed import seed_profiles
from deploy.local.ephemeral import Mesh
from deploy.local.infra import free_port
from services.common.service_auth import ServiceTokenIssuer
from tests.waiting import eventually

# Issue 12's goal.
GOAL_RATIO = 1.0
GOAL_GRPC_RATIO = 1.2
GOAL_CONCURRENCY = 32
GOAL_OPEN_RATE = 150.0
GOAL_P99_GAP_MS = 2.0
EMBED_WAIT_SECONDS = 600.0
EMBEDDED_PROFILES = "SELECT count(*) FROM enrichment.profile_vectors WHERE kind = 'offer'"


async def embedded(database_url: str, profiles: int) -> float:
    """Seconds until enrichment holds an offer vector for `profiles` profiles."""
    started = time.perf_counter()
    connection = await asyncpg.connect(database_url)
    try:

        async def all_embedded() -> bool:
            return await connection.fetchval(EMBEDDED_PROFILES) >= profiles

        await eventually(all_embedded, within=EMBED_WAIT_SECONDS, interval=1.0, message="seeded profiles embedded")
    finally:
        await connection.close()
    return time.perf_counter() - started


@dataclass(frozen=True)
class PathDef:
    name: str
    label: str
    main: bool
    concurrencies: tuple[int, ...]
    open_loop: bool = False  # also in the open loop (main paths always are)


PATHS = (
    PathDef("envoy_rest", "REST via Envoy (transcoder)", True, (1, 32)),
    PathDef("grpc_direct", "gRPC direct to profile service", True, (1, 32)),
    PathDef("fastapi", "FastAPI + asyncpg peer (uvicorn)", True, (1, 32)),
    PathDef("grpc_envoy", "gRPC via Envoy (no transcoding)", False, (1, 32)),
    PathDef("envoy_rest_noauth", "REST via Envoy without jwt_authn + rate-limit call", False, (1, 32), True),
    PathDef("envoy_rest_httpx", "REST via Envoy, httpx client", False, (32,)),
    PathDef("fastapi_naive", "FastAPI peer, naive handler (6 round trips, JWT verified every time)", False, (1, 32)),
)


@dataclass
class Config:
    profiles: int = 1000
    rounds: int = 5
    concurrencies: tuple[int, ...] = (1, 32)
    seconds_c1: float = 1.2
    seconds_cn: float = 2.0
    max_requests: int = 50_000
    warmup_seconds: float = 1.0
    diagnostics: bool = True
    # Open loop for the main paths: Poisson arrivals at these rates, at most 32 connections.
    open_rates: tuple[float, ...] = (150.0,)
    open_max_in_flight: int = 32
    seconds_open: float = 2.0

    def loads(self) -> list[str]:
        """Load labels in run order: closed-loop concurrencies ("1", "32"), then open-loop rates ("150/s")."""
        return [str(c) for c in self.concurrencies] + [open_label(r) for r in self.open_rates]


def open_label(rate: float) -> str:
    return f"{rate:g}/s"


def _postmaster_pid(mesh: Mesh) -> int:
    return int((mesh.postgres.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])


async def _parity(edge: tuple[str, int], peer: tuple[str, int], token: str, ids: list[str]) -> dict:
    """Fetches the same profiles through Envoy and the peer and compares the JSON documents."""
    headers = {"authorization": f"Bearer {token}", "accept": "application/json"}
    a, b = Http1Client(*edge, headers), Http1Client(*peer, headers)
    same, differences, sizes = 0, [], {"envoy_rest": [], "fastapi": []}
    try:
        for profile_id in ids:
            try:
                (sa, ba), (sb, bb) = await a.get(f"/v1/profiles/{profile_id}"), await b.get(f"/profiles/{profile_id}")
            except HttpError as exc:
                raise RuntimeError(f"payload parity check failed ({exc}); see the peer's and Envoy's logs") from exc
            sizes["envoy_rest"].append(len(ba))
            sizes["fastapi"].append(len(bb))
            if sa == sb == 200 and json.loads(ba) == json.loads(bb):
                same += 1
            elif len(differences) < 3:
                differences.append({"id": profile_id, "envoy": ba.decode()[:600], "fastapi": bb.decode()[:600]})
    finally:
        a.close()
        b.close()
    return {
        "checked": len(ids),
        "identical": same,
        "differences": differences,
        "median_body_bytes": {k: statistics.median(v) for k, v in sizes.items() if v},
    }


class Bench:
    def __init__(self, mesh: Mesh, config: Config, log) -> None:
        self.mesh, self.config, self.log = mesh, config, log
        self.peer_process = None
        self.extra_envoy: ExtraEnvoy | None = None
        self.naive_process = None
        self.tokens: list[str] = []
        self.ids: list[str] = []
        self.openers: dict = {}
        self.cpu_groups: dict[str, list[int]] = {}

    # ---- setup

    async def setup(self) -> dict:
        mesh, config = self.mesh, self.config
        t0 = time.perf_counter()
        tokens: dict[str, str] = {}

        def token_for(email: str) -> str:
            if email not in tokens:
                tokens[email] = mesh.token(email, ttl_seconds=3600)
            return tokens[email]

        enrichment = ServiceTokenIssuer.from_dir(mesh.config.service_keys, "enrichment")
        seeded = await seed_profiles(
            mesh.target("profile"),
            token_for,
            enrichment.token,
            config.profiles,
            database_url=mesh.config.effective_database_url,
        )
        seed_seconds = time.perf_counter() - t0
        # Every seeded profile is embedded by the enrichment service (ProfileChanged): wait for that
        # to finish, or its model and its Postgres writes would share the cores with the cells.
        embed_seconds = await embedded(mesh.config.effective_database_url, len(seeded))
        self.log(f"enrichment embedded the seeded profiles {embed_seconds:.1f}s after seeding")
        self.ids = [p.profile_id for p in seeded]
        # Readers: 64 bench users (each worker w reads as user w % 64), all of them profile owners too.
        self.tokens = [token_for(f"bench-{i}@example.com") for i in range(min(64, len(seeded)))]
        self.log(f"seeded {len(seeded)} profiles in {seed_seconds:.1f}s")

        peer_port = free_port()
        self.peer_process = start_peer(
            port=peer_port,
            database_url=mesh.config.database_url or mesh.config.effective_database_url,
            jwks=mesh.key_dir / "jwks.json",
            log_path=mesh.config.data_dir / "logs" / "fastapi-peer.log",
            redis_url=mesh.config.effective_redis_url,
            rates=mesh.config.edge_rates,
        )
        self.peer_port = peer_port
        self.naive_process = None
        if self.config.diagnostics:
            self.naive_port = free_port()
            self.naive_process = start_peer(
                port=self.naive_port,
                database_url=mesh.config.database_url or mesh.config.effective_database_url,
                jwks=mesh.key_dir / "jwks.json",
                log_path=mesh.config.data_dir / "logs" / "fastapi-peer-naive.log",
                mode="naive",
                redis_url=mesh.config.effective_redis_url,
                rates=mesh.config.edge_rates,
            )
            self.extra_envoy = ExtraEnvoy(
                mesh.config.data_dir / "envoy.yaml",
                "noauth",
                without_auth_and_rate_limits,
                mesh.config.data_dir / "logs",
            ).start()
        # Let the outbox relay publish the seeding events before measuring.
        await asyncio.sleep(2.0)
        parity = await _parity(
            ("127.0.0.1", mesh.config.edge_port), ("127.0.0.1", peer_port), self.tokens[0], self.ids[:25]
        )
        self.log(f"payload parity: {parity['identical']}/{parity['checked']} identical JSON documents")
        if parity["identical"] != parity["checked"]:
            self.log(
                f"WARNING: the peer's JSON differs from Envoy's; the comparison is suspect: {parity['differences'][:1]}"
            )
        if self.naive_process is not None:
            naive = await _parity(
                ("127.0.0.1", mesh.config.edge_port), ("127.0.0.1", self.naive_port), self.tokens[0], self.ids[:25]
            )
            parity["naive_identical"] = naive["identical"]
            self.log(f"payload parity (naive peer): {naive['identical']}/{naive['checked']} identical")
        self._openers()
        return {"profiles": len(seeded), "seed_seconds": round(seed_seconds, 2), "parity": parity}

    def paths(self) -> list[PathDef]:
        return [p for p in PATHS if p.main or self.config.diagnostics]

    def _openers(self) -> None:
        mesh, tokens, local = self.mesh, self.tokens, "127.0.0.1"
        self.openers = {
            "envoy_rest": lambda c: Http1Session(local, mesh.config.edge_port, "/v1/profiles/", tokens, c).open(),
            "fastapi": lambda c: Http1Session(local, self.peer_port, "/profiles/", tokens, c).open(),
            "grpc_direct": lambda c: GrpcSession(mesh.target("profile"), tokens, c).open(),
            "grpc_envoy": lambda c: GrpcSession(mesh.edge_target, tokens, c).open(),
            "envoy_rest_httpx": lambda c: HttpxSession(mesh.edge_url, "/v1/profiles/", tokens, c).open(self.ids[0]),
        }
        self.cpu_groups = {
            "envoy": [mesh.processes["envoy"].pid],
            "profile": [mesh.processes["profile"].pid],
            "postgres": [_postmaster_pid(mesh)],
            "fastapi": [self.peer_process.pid],
        }
        if mesh.redis.pid is not None:  # the peer's limits count there (the edge's are in Envoy)
            self.cpu_groups["redis"] = [mesh.redis.pid]
        if "identity" in mesh.processes:  # answers the edge's rate-limit call (sign-in and sign-up only)
            self.cpu_groups["identity"] = [mesh.processes["identity"].pid]
        if self.extra_envoy is not None:
            port = self.extra_envoy.port
            self.openers["envoy_rest_noauth"] = lambda c: Http1Session(local, port, "/v1/profiles/", tokens, c).open()
            self.cpu_groups["envoy_noauth"] = [self.extra_envoy.process.pid]
        if self.naive_process is not None:
            naive_port = self.naive_port
            self.openers["fastapi_naive"] = lambda c: Http1Session(local, naive_port, "/profiles/", tokens, c).open()
            self.cpu_groups["fastapi_naive"] = [self.naive_process.pid]

    # ---- measurement

    async def cell(
        self, path: str, concurrency: int, ids: list[str], seconds: float, meter: CpuMeter, rate: float | None = None
    ) -> dict:
        session = await self.openers[path](concurrency)
        try:
            before = meter.snapshot()
            if rate is None:
                stats = await run_cell(
                    session, concurrency, ids, seconds=seconds, max_requests=self.config.max_requests
                )
            else:
                stats = await run_open_loop(session, concurrency, ids, rate=rate, seconds=seconds, seed=len(ids))
            after = meter.snapshot()
        finally:
            await session.close()
        cpu = CpuMeter.delta(before, after)
        per_request = {k: round(v * 1e6 / stats.ok, 1) for k, v in cpu.items() if k != "wall"} if stats.ok else {}
        return {
            "path": path,
            "load": str(concurrency) if rate is None else open_label(rate),
            "mode": "closed" if rate is None else "open",
            "concurrency": concurrency,
            "ok": stats.ok,
            "errors": stats.errors,
            "seconds": round(stats.seconds, 3),
            "rps": round(stats.rps, 1),
            "p50_ms": round(stats.percentile(50), 3),
            "p90_ms": round(stats.percentile(90), 3),
            "p99_ms": round(stats.percentile(99), 3),
            "max_ms": round(max(stats.latencies_ms), 3) if stats.latencies_ms else None,
            "cpu_us_per_request": per_request,
            "machine_busy_pct": round(100 * cpu["machine"] / (cpu["wall"] * _cores()), 1) if cpu["wall"] else None,
        }

    async def run(self, paths: list[PathDef] | None = None) -> dict:
        config, paths = self.config, paths or self.paths()
        meter = CpuMeter(self.cpu_groups)
        self.log(f"warm-up: {config.warmup_seconds:.1f}s per path at concurrency {max(config.concurrencies)}")
        for path in paths:
            warm_c = max(c for c in path.concurrencies)
            await self.cell(path.name, warm_c, self.ids, config.warmup_seconds, meter)

        cells: list[dict] = []
        t0 = time.perf_counter()
        for round_no in range(config.rounds):
            rng = random.Random(1000 + round_no)
            ids = self.ids[:]
            rng.shuffle(ids)  # the same id sequence for every path within a round
            rotated = paths[round_no % len(paths) :] + paths[: round_no % len(paths)]
            plan = [(c, None, config.seconds_c1 if c == 1 else config.seconds_cn) for c in config.concurrencies]
            plan += [(config.open_max_in_flight, rate, config.seconds_open) for rate in config.open_rates]
            for concurrency, rate, seconds in plan:
                for path in rotated:
                    if rate is None and concurrency not in path.concurrencies:
                        continue
                    if rate is not None and not (path.main or path.open_loop):
                        continue
                    result = await self.cell(path.name, concurrency, ids, seconds, meter, rate)
                    result["round"] = round_no + 1
                    cells.append(result)
                    self.log(
                        f"  round {round_no + 1} {result['load']:>5} {path.name:<17} {result['rps']:>8.1f} req/s  "
                        f"p50 {result['p50_ms']:>7.2f} ms  p99 {result['p99_ms']:>7.2f} ms  errors {result['errors']}"
                    )
        measure_seconds = time.perf_counter() - t0
        return {"cells": cells, "measure_seconds": round(measure_seconds, 1)}

    def close(self) -> None:
        if self.extra_envoy is not None:
            self.extra_envoy.stop()
        for process in (self.peer_process, self.naive_process):
            if process is not None:
                stop_process(process)


def _cores() -> int:
    return os.cpu_count() or 1


DEFAULT_PAIRS = (("envoy_rest", "grpc_direct"), ("envoy_rest_noauth", "envoy_rest"))


def summarize(cells: list[dict], extra_pairs=DEFAULT_PAIRS) -> dict:
    """Medians across rounds per (path, concurrency), paired ratios per round, and the goal check."""
    by_key: dict[tuple[str, str], list[dict]] = {}
    for cell in cells:
        by_key.setdefault((cell["path"], cell["load"]), []).append(cell)
    summary: dict[str, dict] = {}
    for (path, load), rows in by_key.items():
        cpu_keys = sorted({k for r in rows for k in r["cpu_us_per_request"]})
        summary.setdefault(path, {})[load] = {
            "rounds": len(rows),
            "rps": round(statistics.median(r["rps"] for r in rows), 1),
            "rps_min": min(r["rps"] for r in rows),
            "rps_max": max(r["rps"] for r in rows),
            "p50_ms": round(statistics.median(r["p50_ms"] for r in rows), 2),
            "p99_ms": round(statistics.median(r["p99_ms"] for r in rows), 2),
            "p99_ms_max": max(r["p99_ms"] for r in rows),
            "errors": sum(r["errors"] for r in rows),
            "requests": sum(r["ok"] for r in rows),
            "cpu_us_per_request": {
                k: round(statistics.median(r["cpu_us_per_request"].get(k, 0.0) for r in rows), 1) for k in cpu_keys
            },
            "machine_busy_pct": round(statistics.median(r["machine_busy_pct"] or 0 for r in rows), 1),
        }

    def paired(numerator: str, denominator: str, load: str) -> dict | None:
        rounds = {}
        for cell in cells:
            if cell["load"] == load and cell["path"] in (numerator, denominator):
                rounds.setdefault(cell["round"], {})[cell["path"]] = cell["rps"]
        values = [r[numerator] / r[denominator] for r in rounds.values() if r.get(denominator) and numerator in r]
        if not values:
            return None
        return {
            "median": round(statistics.median(values), 3),
            "min": round(min(values), 3),
            "max": round(max(values), 3),
            "per_round": [round(v, 3) for v in values],
        }

    ratios = {}
    # Throughput ratios only mean something in the closed loop (open-loop throughput is the offered rate).
    concurrencies = list(dict.fromkeys(c["load"] for c in cells if c["mode"] == "closed"))
    names = list(dict.fromkeys(c["path"] for c in cells if c["path"] not in ("fastapi", "envoy_rest_httpx")))
    for numerator in names:
        for concurrency in concurrencies:
            ratio = paired(numerator, "fastapi", concurrency)
            if ratio:
                ratios[f"{numerator}/fastapi@{concurrency}"] = ratio
    for concurrency in concurrencies:
        for numerator, denominator in extra_pairs:
            ratio = paired(numerator, denominator, concurrency)
            if ratio:
                ratios[f"{numerator}/{denominator}@{concurrency}"] = ratio

    ratio = ratios.get(f"envoy_rest/fastapi@{GOAL_CONCURRENCY}")
    grpc = ratios.get(f"grpc_direct/fastapi@{GOAL_CONCURRENCY}")
    open_rest = summary.get("envoy_rest", {}).get(open_label(GOAL_OPEN_RATE))
    open_peer = summary.get("fastapi", {}).get(open_label(GOAL_OPEN_RATE))
    goal = {
        "statement": (
            f"at {GOAL_CONCURRENCY} in flight, REST via Envoy (jwt_authn and limits on) reaches at least "
            f"{GOAL_RATIO}x the FastAPI peer's throughput (the peer with the same limits) and direct gRPC at least "
            f"{GOAL_GRPC_RATIO}x; at an offered {GOAL_OPEN_RATE:g} req/s, REST's p99 is within {GOAL_P99_GAP_MS:g} ms "
            "of the peer's"
        ),
        "ratio": ratio["median"] if ratio else None,
        "grpc_ratio": grpc["median"] if grpc else None,
        "p99_gap_ms": round(open_rest["p99_ms"] - open_peer["p99_ms"], 2) if open_rest and open_peer else None,
    }
    goal["ratio_met"] = goal["ratio"] is not None and goal["ratio"] >= GOAL_RATIO
    goal["grpc_met"] = goal["grpc_ratio"] is not None and goal["grpc_ratio"] >= GOAL_GRPC_RATIO
    goal["p99_met"] = goal["p99_gap_ms"] is not None and goal["p99_gap_ms"] <= GOAL_P99_GAP_MS
    goal["met"] = goal["ratio_met"] and goal["grpc_met"] and goal["p99_met"]
    return {"paths": summary, "ratios": ratios, "goal": goal, "auth_cost": added_latency(cells)}


def added_latency(cells: list[dict], path: str = "envoy_rest", without: str = "envoy_rest_noauth") -> dict:
    """What jwt_authn + the rate-limit call add to a GET: per load, per round the difference of p50 and of
    p99 between the mesh's Envoy and the same config without them (paired: same round, same ids), and the
    medians of those differences and of each path's own p50 / p99 across rounds."""
    out: dict[str, dict] = {}
    loads = list(dict.fromkeys(c["load"] for c in cells))
    for load in loads:
        rounds: dict[int, dict[str, dict]] = {}
        for cell in cells:
            if cell["load"] == load and cell["path"] in (path, without):
                rounds.setdefault(cell["round"], {})[cell["path"]] = cell
        pairs = [r for r in rounds.values() if path in r and without in r]
        if not pairs:
            continue

        def med(values) -> float:
            return round(statistics.median(values), 3)

        out[load] = {
            "rounds": len(pairs),
            "with_p50_ms": med(r[path]["p50_ms"] for r in pairs),
            "with_p99_ms": med(r[path]["p99_ms"] for r in pairs),
            "without_p50_ms": med(r[without]["p50_ms"] for r in pairs),
            "without_p99_ms": med(r[without]["p99_ms"] for r in pairs),
            "added_p50_ms": med(r[path]["p50_ms"] - r[without]["p50_ms"] for r in pairs),
            "added_p99_ms": med(r[path]["p99_ms"] - r[without]["p99_ms"] for r in pairs),
            "added_p50_ms_per_round": [round(r[path]["p50_ms"] - r[without]["p50_ms"], 3) for r in pairs],
            "added_p99_ms_per_round": [round(r[path]["p99_ms"] - r[without]["p99_ms"], 3) for r in pairs],
            "with_rps": med(r[path]["rps"] for r in pairs),
            "without_rps": med(r[without]["rps"] for r in pairs),
        }
    return out


async def run_get_profile(mesh: Mesh, config: Config, log) -> dict:
    bench = Bench(mesh, config, log)
    try:
        setup = await bench.setup()
        measured = await bench.run()
    finally:
        bench.close()
    return {
        "config": {
            "profiles": config.profiles,
            "rounds": config.rounds,
            "concurrencies": list(config.concurrencies),
            "open_rates": list(config.open_rates),
            "open_max_in_flight": config.open_max_in_flight,
            "loads": config.loads(),
            "seconds_per_cell": {"1": config.seconds_c1, "n": config.seconds_cn, "open": config.seconds_open},
            "max_requests_per_cell": config.max_requests,
            "warmup_seconds": config.warmup_seconds,
        },
        "labels": {p.name: p.label for p in PATHS},
        "main_paths": [p.name for p in PATHS if p.main],
        "setup": setup,
        **measured,
        **summarize(measured["cells"]),
    }
