"""The peer the Envoy REST path is compared with: a minimal FastAPI + asyncpg handler, the stack the
original spec used, doing the same read as `ProfileService/GetProfile`.

`GET /profiles/{profile_id}` with `Authorization: Bearer <token>` returns the same JSON document as
Envoy's transcoder prints for GetProfileResponse (lowerCamel names, enum names, int64 as strings, RFC 3339
timestamps, every field printed) - checked every run by bench/get_profile.py ("payload parity").

Two modes (BENCH_PEER_MODE):

  same-work (default)  exactly the work the profile service does now, so that only the stack differs:
                       the token checked by services/common/auth.py's TokenVerifier (PyJWT, EdDSA, the
                       mesh's JWKS, verified tokens cached until expiry), and the transaction and SQL of
                       services/common/db.py + services/profile/store.py (BEGIN and the RLS context in
                       one round trip, one query for the profile with skills and endorsement counts,
                       COMMIT), imported from there so they cannot drift apart.
  naive                what a straightforward FastAPI handler does (and what the service did before
                       commit 82a5550): the JWT verified on every request, BEGIN, set_config, three
                       selects (profile, skills, endorsement counts), COMMIT - 6 round trips.

Both modes apply the edge's limits as a FastAPI app's users would add them: the `limits` library
(fixed one-minute windows) on the mesh's Redis, per client address and per user (the token's subject),
with the mesh's OPENHR_RATE_IP_PER_MIN / OPENHR_RATE_USER_PER_MIN; the two counts go to Redis
together (two INCRs in flight at once: one round trip of latency), after the token check like the edge.
Over either: 429 with retry-after. Redis down: the request goes on (fail open, like the edge).

Run by `start_peer()` under uvicorn in its own process, one worker, like each of our services.
Configuration from the environment: BENCH_PEER_DATABASE_URL, BENCH_PEER_JWKS, BENCH_PEER_ISSUER,
BENCH_PEER_AUDIENCE, BENCH_PEER_POOL_MAX (default 10, as OPENHR_DB_POOL_SIZE), BENCH_PEER_MODE,
BENCH_PEER_REDIS_URL (none: no limits) and the two OPENHR_RATE_* above."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import jwt
from fastapi import FastAPI, Header, HTTPException, Request
from jwt import PyJWK
from limits import RateLimitItemPerMinute
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter
from redis.exceptions import RedisError

# The service's own auth and SQL, so that the same-work peer does exactly what GetProfile does.
from services.common.auth import TokenVerifier
from services.common.db import _open_statement
from services.common.edge_rates import EdgeRates
from services.common.errors import DomainError
from services.profile.store import _PROFILES

ROLE = "profile_app"
_OPEN = "SELECT set_config('role', $1, true), set_config('app.user_id', $2, true)"
_PROFILE = """
SELECT profile_id::text, user_id::text, role, display_name, headline, summary, city, country_code, latitude,
       longitude, timezone, years_experience, looking_for, github_username, website_url, linkedin_url, avatar_url,
       visibility, preferences, completeness, version, created_at, updated_at
FROM profile.profiles WHERE profile_id = $1"""
_SKILLS = """
SELECT skill_id::text, name, taxonomy_id, category, proficiency, source, created_at
FROM profile.skills WHERE profile_id = $1 ORDER BY proficiency DESC, name"""
_COUNTS = """
SELECT skill_id::text, count(*) FROM profile.endorsements WHERE profile_id = $1 GROUP BY skill_id"""


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _camel_keys(value):
    if isinstance(value, dict):
        return {_camel(k): _camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel_keys(v) for v in value]
    return value


def _timestamp(value: datetime) -> str:
    """protobuf's JSON form: UTC, 'Z', and 0, 3, 6 or 9 fractional digits."""
    value = value.astimezone(UTC)
    micros = value.microsecond
    base = value.strftime("%Y-%m-%dT%H:%M:%S")
    if micros == 0:
        return base + "Z"
    if micros % 1000 == 0:
        return f"{base}.{micros // 1000:03d}Z"
    return f"{base}.{micros:06d}Z"


def _timestamp_us(micros: int) -> str:
    return _timestamp(datetime.fromtimestamp(micros // 1_000_000, UTC).replace(microsecond=micros % 1_000_000))


class NaiveVerifier:
    """PyJWT with the same checks as services/common/auth.py, on every request, no cache."""

    def __init__(self, jwks_path: str, issuer: str, audience: str) -> None:
        document = json.loads(Path(jwks_path).read_text())
        self._keys = {k["kid"]: PyJWK(k) for k in document.get("keys", [])}
        self._issuer, self._audience = issuer, audience

    async def user_id(self, authorization: str) -> str:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "missing access token")
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != "EdDSA":
                raise HTTPException(401, "access token must be signed with EdDSA")
            key = self._keys.get(header.get("kid", ""))
            if key is None:
                raise HTTPException(401, "unknown signing key")
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=["EdDSA"],
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
                leeway=5,
            )
            return str(uuid.UUID(claims["sub"]))
        except (jwt.PyJWTError, ValueError):
            raise HTTPException(401, "invalid access token") from None


class SameVerifier:
    """The service's own TokenVerifier (and its cache of verified tokens); its verify() may be sync or async."""

    def __init__(self, jwks_path: str, issuer: str, audience: str) -> None:
        self._verifier = TokenVerifier(jwks_path, issuer, audience)

    async def user_id(self, authorization: str) -> str:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "missing access token")
        try:
            principal = self._verifier.verify(token.strip())
            if inspect.isawaitable(principal):
                principal = await principal
            return principal.user_id
        except DomainError:
            raise HTTPException(401, "invalid access token") from None


async def _init_connection(connection: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await connection.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


MODE = os.environ.get("BENCH_PEER_MODE", "same-work")


@asynccontextmanager
async def lifespan(app: FastAPI):
    verifier = SameVerifier if MODE == "same-work" else NaiveVerifier
    app.state.verifier = verifier(
        os.environ["BENCH_PEER_JWKS"],
        os.environ.get("BENCH_PEER_ISSUER", "openhr-identity"),
        os.environ.get("BENCH_PEER_AUDIENCE", "openhr"),
    )
    # Same pool bounds as services/common/db.py.
    app.state.pool = await asyncpg.create_pool(
        os.environ["BENCH_PEER_DATABASE_URL"],
        min_size=0,
        max_size=int(os.environ.get("BENCH_PEER_POOL_MAX", "10")),
        max_inactive_connection_lifetime=300,
        init=_init_connection,
        server_settings={"application_name": f"bench-peer-{MODE}"},
    )
    app.state.limits = _limits(os.environ.get("BENCH_PEER_REDIS_URL"))
    yield
    await app.state.pool.close()


class Limits:
    """Per client address and per user, as the edge limits them (limits' fixed windows in Redis)."""

    def __init__(self, redis_url: str, rates: EdgeRates) -> None:
        self._limiter = FixedWindowRateLimiter(RedisStorage(redis_url, implementation="redispy", key_prefix="peer"))
        self._ip, self._user = RateLimitItemPerMinute(rates.ip_per_min), RateLimitItemPerMinute(rates.user_per_min)

    async def check(self, address: str, user: str) -> None:
        try:
            allowed = await asyncio.gather(
                self._limiter.hit(self._ip, "ip", address), self._limiter.hit(self._user, "user", user)
            )
        except (RedisError, OSError):
            return  # fail open
        for ok, item, key in zip(allowed, (self._ip, self._user), (address, user), strict=True):
            if not ok:
                stats = await self._limiter.get_window_stats(item, "ip" if item is self._ip else "user", key)
                retry = str(max(1, int(stats.reset_time - time.time()) + 1))
                raise HTTPException(429, "too many requests", headers={"retry-after": retry})


def _limits(redis_url: str | None) -> Limits | None:
    return Limits(redis_url, EdgeRates.from_env(os.environ)) if redis_url else None


app = FastAPI(lifespan=lifespan)


@app.get("/healthz")
async def healthz():
    return {"ok": True, "mode": MODE}


@app.get("/profiles/{profile_id}")
async def get_profile(request: Request, profile_id: str, authorization: str = Header("")):
    caller = await app.state.verifier.user_id(authorization)
    if app.state.limits is not None:
        await app.state.limits.check(request.client.host, caller)
    try:
        profile_id = str(uuid.UUID(profile_id))
    except ValueError:
        raise HTTPException(400, "profile_id must be a UUID") from None
    if MODE == "same-work":
        return {"profile": await _same_work(caller, profile_id)}
    return {"profile": await _naive(caller, profile_id)}


async def _same_work(caller: str, profile_id: str) -> dict:
    async with app.state.pool.acquire() as connection:
        await connection.execute(_open_statement(ROLE, caller))
        try:
            row = await connection.fetchrow(_PROFILES + "WHERE p.profile_id = $1", profile_id)
        except BaseException:
            await connection.execute("ROLLBACK")
            raise
        await connection.execute("COMMIT")
    if row is None:
        raise HTTPException(404, "profile not found")
    skills = [
        {
            "skillId": str(s["skill_id"]),
            "name": s["name"],
            "taxonomyId": s["taxonomy_id"],
            "category": s["category"],
            "proficiency": s["proficiency"],
            "source": s["source"],
            "custom": not s["taxonomy_id"],
            "endorsementCount": s["endorsements"],
            "createTime": _timestamp_us(s["created_us"]),
        }
        for s in row["skills"]
    ]
    return _profile_json(row, skills)


async def _naive(caller: str, profile_id: str) -> dict:
    async with app.state.pool.acquire() as connection, connection.transaction():
        await connection.execute(_OPEN, ROLE, caller)
        row = await connection.fetchrow(_PROFILE, profile_id)
        if row is None:
            raise HTTPException(404, "profile not found")
        skill_rows = await connection.fetch(_SKILLS, profile_id)
        counts = dict(await connection.fetch(_COUNTS, profile_id))
    skills = [
        {
            "skillId": s["skill_id"],
            "name": s["name"],
            "taxonomyId": s["taxonomy_id"],
            "category": s["category"],
            "proficiency": s["proficiency"],
            "source": s["source"],
            "custom": not s["taxonomy_id"],
            "endorsementCount": counts.get(s["skill_id"], 0),
            "createTime": _timestamp(s["created_at"]),
        }
        for s in skill_rows
    ]
    return _profile_json(row, skills)


def _profile_json(row, skills: list[dict]) -> dict:
    return {
        "profileId": str(row["profile_id"]),
        "userId": str(row["user_id"]),
        "role": row["role"],
        "displayName": row["display_name"],
        "headline": row["headline"],
        "summary": row["summary"],
        "location": {
            "city": row["city"],
            "countryCode": row["country_code"],
            "latitude": row["latitude"],
            "longitude": row["longitude"],
        },
        "timezone": row["timezone"],
        "yearsExperience": row["years_experience"],
        "lookingFor": row["looking_for"],
        "links": {
            "githubUsername": row["github_username"],
            "websiteUrl": row["website_url"],
            "linkedinUrl": row["linkedin_url"],
        },
        "visibility": row["visibility"],
        "preferences": _camel_keys(row["preferences"]),
        "skills": skills,
        "avatarUrl": row["avatar_url"],
        "completeness": row["completeness"],
        "version": str(row["version"]),
        "createTime": _timestamp(row["created_at"]),
        "updateTime": _timestamp(row["updated_at"]),
    }


def start_peer(
    *,
    port: int,
    database_url: str,
    jwks: Path,
    log_path: Path,
    mode: str = "same-work",
    redis_url: str | None = None,
    rates: EdgeRates | None = None,
    extra_args: list[str] = (),
    timeout: float = 30,
) -> subprocess.Popen:
    """uvicorn with its defaults (uvloop + httptools when installed, access log on), one worker;
    with `redis_url`, the edge's limits at `rates` (default: their defaults)."""
    env = {
        **os.environ,
        "BENCH_PEER_MODE": mode,
        "BENCH_PEER_DATABASE_URL": database_url,
        "BENCH_PEER_JWKS": str(jwks),
        "PYTHONUNBUFFERED": "1",
    }
    if redis_url:
        rates = rates or EdgeRates()
        env.update(
            BENCH_PEER_REDIS_URL=redis_url,
            OPENHR_RATE_IP_PER_MIN=str(rates.ip_per_min),
            OPENHR_RATE_USER_PER_MIN=str(rates.user_per_min),
        )
    argv = [
        sys.executable, "-m", "uvicorn", "bench.peer:app", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", *extra_args,
    ]  # fmt: skip
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the FastAPI peer exited:\n{log_path.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    stop_process(process)
    raise RuntimeError(f"the FastAPI peer did not start:\n{log_path.read_text(errors='replace')[-2000:]}")


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
