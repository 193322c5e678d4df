"""Sign-in throughput: `POST /v1/auth/login` (email + password) through the edge, closed loop at 1, 2 and 4 in
flight, interleaved over rounds, on accounts created first with `POST /v1/auth/signup`.

Sign-in is deliberately slow: identity verifies the password with argon2id (services/identity/passwords.py,
parameters read from there and stated in the report, with the in-process time of one hash) in worker threads,
at most `CONCURRENCY` at once. It is also rate-limited at the edge (OPENHR_RATE_LOGIN_IP_PER_MIN, 10 per
minute per address by default): the bench mesh lifts the limits (deploy/local/ephemeral.py UNLIMITED_RATES),
so this measures the cost of a sign-in, not the limit."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass

from argon2 import PasswordHasher, Type

from bench.cpu import CpuMeter
from bench.http1 import Http1Client
from bench.load import Session, run_cell
from deploy.local.ephemeral import Mesh
from services.identity import passwords

PASSWORD = "bench-Password-1234"
LOCAL = "127.0.0.1"


@dataclass
class SigninConfig:
    users: int = 40
    rounds: int = 3
    concurrencies: tuple[int, ...] = (1, 2, 4)
    seconds: float = 3.0
    warmup_seconds: float = 1.0
    hash_samples: int = 20


def argon2_parameters() -> dict:
    return {
        "type": "argon2id",
        "time_cost": passwords.TIME_COST,
        "memory_cost_kib": passwords.MEMORY_COST_KIB,
        "parallelism": passwords.PARALLELISM,
        "hash_len": passwords.HASH_LEN,
        "salt_len": passwords.SALT_LEN,
        "concurrency": passwords.CONCURRENCY,
    }


def hash_time_ms(samples: int) -> dict:
    """In-process time of `PasswordHasher.hash` with identity's parameters (this process, one thread)."""
    hasher = PasswordHasher(
        time_cost=passwords.TIME_COST,
        memory_cost=passwords.MEMORY_COST_KIB,
        parallelism=passwords.PARALLELISM,
        hash_len=passwords.HASH_LEN,
        salt_len=passwords.SALT_LEN,
        type=Type.ID,
    )
    hasher.hash("warm-up")
    times = []
    for i in range(samples):
        t0 = time.perf_counter()
        hasher.hash(f"{PASSWORD}-{i}")
        times.append((time.perf_counter() - t0) * 1000)
    return {
        "samples": samples,
        "median_ms": round(statistics.median(times), 1),
        "min_ms": round(min(times), 1),
        "max_ms": round(max(times), 1),
    }


def _body(email: str) -> bytes:
    return json.dumps({"email": email, "password": PASSWORD}).encode()


class LoginSession(Session):
    """One keep-alive connection per worker; `call(worker, email)` signs that account in."""

    def __init__(self, port: int, concurrency: int) -> None:
        self._clients = [Http1Client(LOCAL, port, {"accept": "application/json"}) for _ in range(concurrency)]

    async def open(self) -> LoginSession:
        for client in self._clients:
            await client.connect()
        return self

    async def call(self, worker: int, email: str) -> bool:
        status, body = await self._clients[worker].post("/v1/auth/login", _body(email))
        return status == 200 and b"accessToken" in body

    async def close(self) -> None:
        for client in self._clients:
            client.close()


async def _sign_up(port: int, emails: list[str]) -> None:
    client = Http1Client(LOCAL, port, {"accept": "application/json"})
    try:
        for email in emails:
            status, body = await client.post("/v1/auth/signup", _body(email))
            if status != 200:
                raise RuntimeError(f"sign-up of {email} failed: HTTP {status} {body[:300]!r}")
    finally:
        client.close()


async def run_signin(mesh: Mesh, config: SigninConfig, log) -> dict:
    port = mesh.config.edge_port
    parameters = argon2_parameters()
    hashing = hash_time_ms(config.hash_samples)
    log(
        f"argon2id t={parameters['time_cost']} m={parameters['memory_cost_kib'] // 1024} MiB "
        f"p={parameters['parallelism']}: {hashing['median_ms']} ms per hash in process "
        f"(median of {config.hash_samples})"
    )
    emails = [f"signin-{i}@example.com" for i in range(config.users)]
    t0 = time.perf_counter()
    await _sign_up(port, emails)
    signup_seconds = time.perf_counter() - t0
    log(f"signed up {len(emails)} users through the edge in {signup_seconds:.1f}s")

    groups = {"envoy": [mesh.processes["envoy"].pid], "identity": [mesh.processes["identity"].pid]}
    meter = CpuMeter(groups)

    async def cell(concurrency: int, seconds: float, ids: list[str]) -> dict:
        session = await LoginSession(port, concurrency).open()
        try:
            before = meter.snapshot()
            stats = await run_cell(session, concurrency, ids, seconds=seconds, max_requests=100_000)
            after = meter.snapshot()
        finally:
            await session.close()
        cpu = CpuMeter.delta(before, after)
        return {
            "concurrency": concurrency,
            "ok": stats.ok,
            "errors": stats.errors,
            "seconds": round(stats.seconds, 3),
            "rps": round(stats.rps, 2),
            "p50_ms": round(stats.percentile(50), 1),
            "p99_ms": round(stats.percentile(99), 1),
            "max_ms": round(max(stats.latencies_ms), 1) if stats.latencies_ms else None,
            "cpu_ms_per_login": {k: round(v * 1e3 / stats.ok, 1) for k, v in cpu.items() if k != "wall"}
            if stats.ok
            else {},
        }

    await cell(max(config.concurrencies), config.warmup_seconds, emails)
    cells = []
    for round_no in range(config.rounds):
        shift = round_no % len(config.concurrencies)
        order = config.concurrencies[shift:] + config.concurrencies[:shift]
        ids = emails[round_no:] + emails[:round_no]
        for concurrency in order:
            result = await cell(concurrency, config.seconds, ids)
            result["round"] = round_no + 1
            cells.append(result)
            log(
                f"  round {round_no + 1} login c{concurrency}  {result['rps']:>6.2f} req/s  "
                f"p50 {result['p50_ms']:>7.1f} ms  p99 {result['p99_ms']:>7.1f} ms  errors {result['errors']}"
            )
    summary = {}
    for concurrency in config.concurrencies:
        rows = [c for c in cells if c["concurrency"] == concurrency]
        summary[str(concurrency)] = {
            "rounds": len(rows),
            "rps": round(statistics.median(r["rps"] for r in rows), 2),
            "rps_min": min(r["rps"] for r in rows),
            "rps_max": max(r["rps"] for r in rows),
            "p50_ms": round(statistics.median(r["p50_ms"] for r in rows), 1),
            "p99_ms": round(statistics.median(r["p99_ms"] for r in rows), 1),
            "errors": sum(r["errors"] for r in rows),
            "identity_cpu_ms_per_login": round(
                statistics.median(r["cpu_ms_per_login"].get("identity", 0.0) for r in rows), 1
            ),
        }
    return {
        "config": {
            "users": config.users,
            "rounds": config.rounds,
            "concurrencies": list(config.concurrencies),
            "seconds_per_cell": config.seconds,
            "warmup_seconds": config.warmup_seconds,
        },
        "argon2": parameters,
        "hash_in_process": hashing,
        "signup_seconds": round(signup_seconds, 2),
        "cells": cells,
        "summary": summary,
    }


def markdown(result: dict, machine: dict) -> str:
    from bench.machine import markdown as machine_markdown

    a, h, config = result["argon2"], result["hash_in_process"], result["config"]
    lines = [
        "# Sign-in throughput: POST /v1/auth/login through the edge",
        "",
        machine_markdown(machine),
        "## Method",
        "",
        f"- On the `make bench` mesh, {config['users']} accounts are created through the edge with "
        f"`POST /v1/auth/signup` ({result['signup_seconds']} s), then `POST /v1/auth/login` "
        '(`{"email", "password"}`, a 200 with an access token counts) runs in a closed loop at '
        f"{', '.join(map(str, config['concurrencies']))} in flight (one keep-alive connection per worker, "
        f"`bench/http1.py`), {config['seconds_per_cell']} s per cell, {config['rounds']} rounds, order rotated "
        f"per round, accounts taken in turn. Warm-up {config['warmup_seconds']} s first. Figures are medians "
        "across rounds.",
        "- **Sign-in is deliberately slow.** identity verifies the password with argon2id "
        f"(`services/identity/passwords.py`): time cost **{a['time_cost']}** passes, memory "
        f"**{a['memory_cost_kib'] // 1024} MiB** ({a['memory_cost_kib']:,} KiB), parallelism **{a['parallelism']}** "
        f"lanes, {a['salt_len']}-byte salt, {a['hash_len']}-byte tag; hashes run in worker threads, at most "
        f"{a['concurrency']} at once (each holds {a['memory_cost_kib'] // 1024} MiB). One `PasswordHasher.hash` "
        f"with these parameters takes **{h['median_ms']} ms** in process on this machine (median of "
        f"{h['samples']}, {h['min_ms']}-{h['max_ms']} ms; verify costs the same), so the machine's ceiling is "
        "about (cores / hash time) sign-ins per second whatever else is fast.",
        "- **Sign-in is also rate-limited**: 10 per minute per client address by default "
        "(`OPENHR_RATE_LOGIN_IP_PER_MIN`), 5 failures per account per 15 minutes. The bench mesh lifts the "
        "limits (`deploy/local/ephemeral.py` UNLIMITED_RATES) so every attempt is measured; the rate-limit "
        "call is still made on each one.",
        "",
        "## Results",
        "",
        "| in flight | req/s (median) | req/s min-max | p50 ms | p99 ms | errors | identity CPU ms per sign-in |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for concurrency, s in result["summary"].items():
        lines.append(
            f"| {concurrency} | {s['rps']:.2f} | {s['rps_min']:.2f}-{s['rps_max']:.2f} | {s['p50_ms']:.1f} | "
            f"{s['p99_ms']:.1f} | {s['errors']} | {s['identity_cpu_ms_per_login']:.1f} |"
        )
    lines += [
        "",
        "## Raw data",
        "",
        "`bench/results/signin.json`: every cell of every round (req/s, p50/p99/max, errors, CPU per sign-in of "
        "Envoy and identity), the argon2 parameters and the hash timings.",
        "",
    ]
    return "\n".join(lines)
