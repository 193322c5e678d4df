"""Rate limits on a mesh of their own with small limits: per user and per client address (token
buckets in Envoy, services/common/edge_rates.py), sign-in and sign-up per address
(services/identity/ratelimit.py behind Envoy's ratelimit filter), failed sign-ins per account,
and what happens while Redis is down.

Every client address counts on its own, so each test speaks from its own loopback address
(127.0.0.N: Linux routes all of 127/8 to lo, and Envoy sees the peer address). Identity's windows
are fixed minutes: a burst starts early enough in a minute to end inside it. Envoy's buckets
refill continuously (a limit of 15 a minute: one token every 4 s), so a burst through them says
how many passed given how long it took."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from deploy.local.ephemeral import Mesh, start_mesh
from deploy.local.stack import DESCRIPTOR, edge_ready
from edge.envoy import local_replies
from edge.envoy.render import public_http_routes
from openhr.enrichment.v1 import enrichment_pb2
from openhr.identity.v1 import identity_pb2
from services.common.settings import REPO_ROOT
from tests.edge.edge_calls import (
    RESOURCE_EXHAUSTED,
    envoy_stats,
    error_details,
    error_info,
    grpc_call,
    grpc_web_call,
    rest_call,
)
from tests.envoy_process import RunningEnvoy, running_envoy
from tests.logs import assert_never_reached
from tests.metrics import sample
from tests.users import PASSWORD
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(300)

LIMITS = {
    "OPENHR_RATE_USER_PER_MIN": "5",
    "OPENHR_RATE_IP_PER_MIN": "15",
    "OPENHR_RATE_LOGIN_IP_PER_MIN": "3",
    "OPENHR_RATE_SIGNUP_IP_PER_MIN": "2",
    "OPENHR_RATE_LOGIN_FAILURES": "3",
    "OPENHR_RATE_LOGIN_FAILURE_WINDOW": "900",
}
SEARCH = "/openhr.enrichment.v1.SkillsService/SearchSkills"
LOGIN = "/openhr.identity.v1.IdentityService/Login"
DECISIONS = "openhr_rate_limit_decisions_total"
# What every edge 429 carries, as the services' errors do: ErrorInfo (ERROR_REASON_RATE_LIMITED)
# and RetryInfo (REST body; gRPC / grpc-web grpc-status-details-bin).
RATE_LIMITED_DETAILS = [
    error_info("ERROR_REASON_RATE_LIMITED"),
    {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": f"{local_replies.RATE_LIMIT_RETRY_DELAY_SECONDS}s",
    },
]
_addresses = (f"127.0.{n // 250}.{n % 250 + 2}" for n in itertools.count(10))


@pytest.fixture(scope="module")
def limited_mesh() -> Mesh:
    started = start_mesh(REPO_ROOT / ".data" / f"test-rates-{os.getpid()}", extra_env=LIMITS)
    yield started
    started.stop(remove_data=True)


@pytest.fixture(scope="module")
async def edge_channel(limited_mesh: Mesh) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(limited_mesh.edge_target) as channel:
        yield channel


def client_from(mesh: Mesh, address: str | None = None) -> httpx.AsyncClient:
    """An HTTP client of the edge whose connections come from `address` (a fresh one if None)."""
    transport = httpx.AsyncHTTPTransport(local_address=address or next(_addresses))
    return httpx.AsyncClient(base_url=mesh.edge_url, transport=transport, timeout=15)


async def fresh_window(need: float = 15.0) -> None:
    """Waits for the next minute unless `need` seconds are left in this one. (The one wait on
    the clock itself: the limits count in fixed minutes of wall time.)"""
    left = 60 - time.time() % 60
    if left < need:
        await asyncio.sleep(left + 0.3)


async def fail_opens(mesh: Mesh, admin: str | None = None) -> dict[str, float]:
    """Rate-limit answers that let a request through uncounted, by who gave up: Envoy (identity
    did not answer within OPENHR_EDGE_RATELIMIT_TIMEOUT) and identity (Redis did not answer
    within OPENHR_RATE_REDIS_TIMEOUT, or is down). `admin`: another Envoy's admin URL."""
    admin = admin or f"http://127.0.0.1:{mesh.config.admin_port}"
    edge = sum((await envoy_stats(admin, r"\.ratelimit\.edge\.(error|failure_mode_allowed)$")).values())
    identity = await sample(mesh, "identity", DECISIONS, outcome="redis_down")
    return {"edge": edge, "identity": identity}


@pytest.fixture
async def every_answer_counted(limited_mesh: Mesh) -> AsyncIterator[None]:
    """For tests that assert exact counts: none of their requests passed on a fail-open answer
    (a slow identity or Redis under load), which would pass uncounted and shift every count.
    The test meshes give both generous deadlines; this says so if one was missed anyway."""
    before = await fail_opens(limited_mesh)
    yield
    assert await fail_opens(limited_mesh) == before, "a rate-limit answer failed open: the counts above are off"


def assert_burst(statuses: list[int], limit: int, started: float, refused: int = 429) -> int:
    """A burst through one of Envoy's buckets (`limit` a minute, full at `started`): `limit` pass,
    plus what the bucket regained meanwhile, then every one is refused. Returns how many passed."""
    regained = int((time.monotonic() - started) * limit / 60)
    passed = statuses.index(refused) if refused in statuses else len(statuses)
    assert limit <= passed <= limit + regained, (statuses, limit, regained)
    assert statuses == [statuses[0]] * passed + [refused] * (len(statuses) - passed), statuses
    return passed


def new_email(prefix: str = "rate") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def assert_limited(answer, limit: int) -> int:
    """An edge 429 / RESOURCE_EXHAUSTED with its headers; returns retry-after."""
    retry_after = int(answer.headers["retry-after"])
    assert 1 <= retry_after <= 60, answer.headers
    assert answer.headers["x-ratelimit-remaining"] == "0", answer.headers
    assert abs(int(answer.headers["x-ratelimit-reset"]) - retry_after) <= 1, answer.headers
    assert answer.headers["x-ratelimit-limit"].split(",")[0] == str(limit), answer.headers
    return retry_after


async def _sign_up(mesh: Mesh) -> str:
    email = new_email("account")
    async with client_from(mesh) as client:
        response = await client.post("/v1/auth/signup", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return email


async def _login(mesh: Mesh, email: str, password: str):
    """A sign-in from an address of its own (below the per-address limit)."""
    async with client_from(mesh) as client:
        return await rest_call(client, "POST", "/v1/auth/login", json={"email": email, "password": password})


async def _identity_serving(mesh: Mesh) -> bool:
    async with grpc.aio.insecure_channel(mesh.target("identity")) as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_redis_down_fails_open_for_sign_up_and_closed_for_sign_in(limited_mesh: Mesh) -> None:
    """It stops Redis, and leaves the mesh as it found it: any test may come before or after.
    While Redis is down, the per-user and per-address limits still hold (Envoy's own buckets),
    sign-up works uncounted (identity's fail-open answer, not Envoy's), but sign-in answers
    UNAVAILABLE: it will not run without its per-account counter. Identity itself stays SERVING.
    Once Redis is back, sign-in comes back."""
    email = await _sign_up(limited_mesh)
    user = limited_mesh.token()
    before = await fail_opens(limited_mesh)
    limited_mesh.redis.stop()
    try:
        async with client_from(limited_mesh) as client:
            started = time.monotonic()
            answers = [
                await rest_call(client, "GET", "/v1/skills:search", token=user, params={"query": "py"})
                for _ in range(7)
            ]
            passed = assert_burst([a.status for a in answers], 5, started)
            assert_limited(answers[passed], 5)
        async with client_from(limited_mesh) as client:
            signed_up = await rest_call(
                client, "POST", "/v1/auth/signup", json={"email": new_email(), "password": PASSWORD}
            )
        assert signed_up.status == 200, signed_up
        for password in (PASSWORD, "wrong-pass-1"):
            refused = await _login(limited_mesh, email, password)
            assert (refused.status, refused.message) == (503, "sign-in is temporarily unavailable, retry later")
        async with client_from(limited_mesh) as client:
            login = identity_pb2.LoginRequest(email=email, password=PASSWORD).SerializeToString()
            assert (await grpc_web_call(client, LOGIN, login)).grpc_status == grpc.StatusCode.UNAVAILABLE.value[0]
        assert await _identity_serving(limited_mesh)
        during = await fail_opens(limited_mesh)
        # Identity decided the sign-up and the sign-ins (uncounted): Envoy never gave up on it.
        assert during["edge"] == before["edge"] and during["identity"] >= before["identity"] + 4, (before, during)
    finally:
        limited_mesh.redis.start()

    async def signed_in() -> bool:
        return (await _login(limited_mesh, email, PASSWORD)).status == 200

    await eventually(signed_in, message="sign-in still refused after Redis came back")
    await eventually(lambda: asyncio.to_thread(edge_ready, limited_mesh.config), message="a cluster is not healthy")


def test_the_edge_limits_are_rendered_from_their_one_definition(limited_mesh: Mesh) -> None:
    """The mesh's OPENHR_RATE_* reach Envoy's buckets through services/common/edge_rates.py."""
    config = (limited_mesh.config.data_dir / "envoy.yaml").read_text()
    for limit in (LIMITS["OPENHR_RATE_IP_PER_MIN"], LIMITS["OPENHR_RATE_USER_PER_MIN"]):
        assert f"token_bucket: {{max_tokens: {limit}, tokens_per_fill: {limit}, fill_interval: 60s}}" in config


async def test_a_burst_per_user_passes_exactly_the_limit_over_rest(limited_mesh: Mesh) -> None:
    user, other = limited_mesh.token(), limited_mesh.token()
    async with client_from(limited_mesh) as client:
        started = time.monotonic()
        answers = [
            await rest_call(client, "GET", "/v1/skills:search", token=user, params={"query": "py"}) for _ in range(8)
        ]
        count = assert_burst([a.status for a in answers], 5, started)
        passed, refused = answers[:count], answers[count:]
        if count == 5:  # nothing regained meanwhile
            assert [a.headers["x-ratelimit-remaining"] for a in passed] == ["4", "3", "2", "1", "0"]
        assert all(a.headers["x-ratelimit-limit"] == "5" for a in passed)
        for answer in refused:
            assert answer.status == 429, answer
            assert answer.body == {
                "code": RESOURCE_EXHAUSTED,
                "message": local_replies.RATE_LIMITED_MESSAGE,
                "details": RATE_LIMITED_DETAILS,
            }
            assert_limited(answer, 5)
        # Another user from the same address is not limited; the refused ones never reached
        # the enrichment service.
        control = await rest_call(client, "GET", "/v1/skills:search", token=other, params={"query": "py"})
        assert control.status == 200 and control.headers["x-ratelimit-remaining"] == "4"
        await assert_never_reached(limited_mesh, "enrichment", [a.request_id for a in refused], control.request_id)


async def test_a_burst_per_user_over_grpc_and_grpc_web(limited_mesh: Mesh, edge_channel) -> None:
    request = enrichment_pb2.SearchSkillsRequest(query="py", limit=3).SerializeToString()
    user, started = limited_mesh.token(), time.monotonic()
    answers = [await grpc_call(edge_channel, SEARCH, request, token=user) for _ in range(7)]
    passed = assert_burst([a.grpc_status for a in answers], 5, started, refused=RESOURCE_EXHAUSTED)
    assert answers[passed - 1].headers["x-ratelimit-remaining"] == "0"
    assert_limited(answers[passed], 5)
    assert error_details(answers[passed]) == RATE_LIMITED_DETAILS

    user, started = limited_mesh.token(), time.monotonic()
    async with client_from(limited_mesh) as client:
        answers = [await grpc_web_call(client, SEARCH, request, token=user) for _ in range(7)]
    passed = assert_burst([a.grpc_status for a in answers], 5, started, refused=RESOURCE_EXHAUSTED)
    # A grpc-web client reads a trailers-only answer: HTTP 200, the status in the headers.
    assert answers[passed].status == 200
    assert_limited(answers[passed], 5)
    assert error_details(answers[passed]) == RATE_LIMITED_DETAILS


async def test_a_burst_per_client_address(limited_mesh: Mesh) -> None:
    """Fifteen users behind one address, one request each: the address's limit, not theirs."""
    tokens = [limited_mesh.token() for _ in range(19)]
    async with client_from(limited_mesh) as client:
        started = time.monotonic()
        answers = [
            await rest_call(client, "GET", "/v1/skills:search", token=token, params={"query": "go"}) for token in tokens
        ]
    passed = assert_burst([a.status for a in answers], 15, started)
    assert_limited(answers[passed], 15)


@pytest.fixture
def edge_behind_balancer(limited_mesh: Mesh, tmp_path: Path) -> Iterator[RunningEnvoy]:
    """A second Envoy in front of the same services, told one load balancer stands before it
    (trusted_hops=1)."""
    with running_envoy(
        limited_mesh.config.ports,
        tmp_path,
        service_keys=limited_mesh.config.service_keys,
        trusted_hops=1,
        edge_rates=limited_mesh.config.edge_rates,
    ) as edge:
        yield edge


async def test_behind_a_load_balancer_clients_count_by_the_address_it_forwarded(
    limited_mesh: Mesh, edge_behind_balancer: RunningEnvoy
) -> None:
    """Every request arrives from the balancer's address; each client is counted by the
    X-Forwarded-For entry the balancer appended. What a client writes before it is not trusted,
    and a request without the header counts by its peer (the balancer)."""
    edge = edge_behind_balancer
    balancer = httpx.AsyncHTTPTransport(local_address=next(_addresses))
    async with httpx.AsyncClient(base_url=edge.url, transport=balancer, timeout=15) as client:

        async def search(forwarded_for: str | None = None):
            headers = {"x-forwarded-for": forwarded_for} if forwarded_for else {}
            token = limited_mesh.token()  # a new user each time: only the address limit applies
            return await rest_call(
                client, "GET", "/v1/skills:search", token=token, params={"query": "go"}, headers=headers
            )

        async def ready() -> bool:  # Envoy up, clusters healthy, JWKS fetched
            with contextlib.suppress(httpx.HTTPError):
                return (await search()).status == 200
            return False

        await eventually(ready, message=lambda: f"the second Envoy did not become ready:\n{edge.output()}")
        alice, bob = "203.0.113.7", "203.0.113.8"
        started = time.monotonic()
        answers = [await search(alice) for _ in range(18)]
        # A forged first entry changes nothing: still alice's bucket.
        answers += [await search(f"198.51.100.1, {alice}") for _ in range(2)]
        assert_burst([a.status for a in answers], 15, started)
        # (A passing answer's x-ratelimit headers describe the user's bucket, the slower to refill.)
        assert_limited(answers[-1], 15)
        assert (await search(bob)).status == 200  # bob has a count of his own
        assert (await search()).status == 200


@pytest.mark.usefixtures("every_answer_counted")
async def test_sign_in_is_limited_per_client_address(limited_mesh: Mesh) -> None:
    address = next(_addresses)
    async with client_from(limited_mesh, address) as client, client_from(limited_mesh) as elsewhere:
        await fresh_window()
        attempts = [
            await rest_call(client, "POST", "/v1/auth/login", json={"email": new_email(), "password": "wrong-pass-1"})
            for _ in range(4)
        ]
        # Three reach identity (each a different address: no account limit involved) ...
        assert [a.status for a in attempts[:3]] == [401] * 3
        assert all(a.body["details"] for a in attempts[:3])  # identity's answer
        # ... the fourth is Envoy's, and so is every later one over REST or grpc-web.
        assert attempts[3].status == 429, attempts[3]
        assert attempts[3].body["message"] == local_replies.RATE_LIMITED_MESSAGE
        assert attempts[3].body["details"] == RATE_LIMITED_DETAILS
        assert_limited(attempts[3], 3)
        login = identity_pb2.LoginRequest(email=new_email(), password="wrong-pass-1").SerializeToString()
        assert (await grpc_web_call(client, LOGIN, login)).grpc_status == RESOURCE_EXHAUSTED
        # Other requests from that address, and sign-ins from others, go on.
        assert (await rest_call(client, "GET", "/.well-known/jwks.json")).status == 200
        other = await rest_call(
            elsewhere, "POST", "/v1/auth/login", json={"email": new_email(), "password": "x1234567"}
        )
        assert other.status == 401


@pytest.mark.usefixtures("every_answer_counted")
async def test_sign_up_is_limited_per_client_address(limited_mesh: Mesh) -> None:
    async with client_from(limited_mesh) as client:
        await fresh_window()
        answers = [
            await rest_call(client, "POST", "/v1/auth/signup", json={"email": new_email(), "password": PASSWORD})
            for _ in range(3)
        ]
    assert [a.status for a in answers] == [200, 200, 429], answers
    assert_limited(answers[2], 2)


# The same route spelled differently: Envoy normalizes percent-encoded unreserved characters
# and the transcoder tolerates a trailing slash, so each variant reaches the same RPC and must
# count against the same limit (and be public or not alike).
ROUTE_VARIANTS = {
    "trailing_slash": lambda path: f"{path}/",
    "query_string": lambda path: f"{path}?x=1",
    "percent_encoded": lambda path: path[:-2] + "%" + format(ord(path[-2]), "02X") + path[-1],
    "trailing_slash_and_query": lambda path: f"{path}/?x=1",
}


@pytest.mark.parametrize("variant", list(ROUTE_VARIANTS))
@pytest.mark.usefixtures("every_answer_counted")
@pytest.mark.parametrize(("path", "limit"), [("/v1/auth/login", 3), ("/v1/auth/signup", 2)], ids=["login", "signup"])
async def test_sign_in_and_sign_up_limits_hold_for_every_spelling_of_the_route(
    limited_mesh: Mesh, path: str, limit: int, variant: str
) -> None:
    """A valid access token lets any path through jwt_authn: the per-address limit of sign-in and
    sign-up must still count `/v1/auth/login/`, `/v1/auth/login?x=1` and `/v1/auth/logi%6E`."""
    spelled = ROUTE_VARIANTS[variant](path)
    token = limited_mesh.token()
    async with client_from(limited_mesh) as client:
        await fresh_window()
        answers = [
            await rest_call(
                client,
                "POST",
                httpx.URL(limited_mesh.edge_url + spelled),
                token=token,
                json={"email": new_email(), "password": "wrong-pass-1"},
            )
            for _ in range(limit + 1)
        ]
    assert all(a.status != 429 for a in answers[:limit]), answers
    assert answers[limit].status == 429 and answers[limit].body["details"] == RATE_LIMITED_DETAILS, answers[limit]
    assert_limited(answers[limit], limit)


@pytest.mark.parametrize("variant", ["trailing_slash", "percent_encoded"])
async def test_every_public_route_is_public_in_every_spelling(limited_mesh: Mesh, variant: str) -> None:
    """jwt_authn and the transcoder agree: a spelling of a public route needs no token either;
    it reaches the same method or none."""
    routes = public_http_routes(DESCRIPTOR)
    assert len(routes) >= 10
    for route in routes:
        path = re.sub(r"\{[^}]+\}", "github", route["template"])
        async with client_from(limited_mesh) as client:
            canonical = await rest_call(client, route["method"], path, content=b"{}")
            spelled = await rest_call(
                client, route["method"], httpx.URL(limited_mesh.edge_url + ROUTE_VARIANTS[variant](path)), content=b"{}"
            )
        assert canonical.message != local_replies.MISSING_TOKEN, (path, canonical)
        # Either the same method answers the same, or the transcoder knows no such route.
        assert (spelled.status, spelled.message) in {
            (canonical.status, canonical.message),
            (404, local_replies.NOT_FOUND_MESSAGE),
        }, (path, spelled)



@pytest.mark.parametrize("known", [True, False], ids=["known_account", "unknown_address"])
@pytest.mark.usefixtures("every_answer_counted")
async def test_failed_sign_ins_lock_the_account_whoever_tries(limited_mesh: Mesh, known: bool) -> None:
    """Three failures from three addresses, then even the right password is refused for the
    rest of the window, for an unknown address alike (no oracle of who has an account)."""
    email = await _sign_up(limited_mesh) if known else new_email("nobody")
    failures = [await _login(limited_mesh, email, "wrong-pass-1") for _ in range(3)]
    assert [(a.status, a.message) for a in failures] == [(401, "wrong email or password")] * 3
    locked = await _login(limited_mesh, email, PASSWORD)
    assert locked.status == 429, locked
    assert locked.message.startswith("too many failed sign-ins for this account: retry in"), locked.message
    (info,) = [d for d in locked.body["details"] if d["@type"].endswith("ErrorInfo")]
    assert info["reason"] == "ERROR_REASON_RATE_LIMITED"
    retry_after = int(locked.headers["retry-after"])
    assert 850 < retry_after <= 900 and info["metadata"] == {"retry_after": str(retry_after)}
    # Another account is not affected.
    assert (await _login(limited_mesh, new_email("other"), "wrong-pass-1")).status == 401


@pytest.mark.usefixtures("every_answer_counted")
async def test_a_successful_sign_in_clears_the_failures(limited_mesh: Mesh) -> None:
    email = await _sign_up(limited_mesh)
    assert [(await _login(limited_mesh, email, "wrong-pass-1")).status for _ in range(2)] == [401, 401]
    assert (await _login(limited_mesh, email, PASSWORD)).status == 200
    assert [(await _login(limited_mesh, email, "wrong-pass-1")).status for _ in range(4)] == [401, 401, 401, 429]
