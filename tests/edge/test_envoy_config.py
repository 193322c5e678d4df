"""The Envoy edge config (edge/envoy/envoy.yaml.j2): it validates, and a real Envoy with
only the profile and enrichment clusters (and no upstream running) routes, rejects and logs
as designed over REST, grpc-web and plain gRPC."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import grpc
import httpx
import pytest
import yaml
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from deploy.local import stack
from deploy.local.stack import StackConfig
from edge.envoy.render import render
from tests.envoy_process import RunningEnvoy, assert_valid, running_envoy
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
# OPENHR_DESCRIPTOR points the suite at a prebuilt descriptor set; else gen/openhr.binpb,
# built with buf when missing.
DESCRIPTOR = Path(os.environ.get("OPENHR_DESCRIPTOR") or REPO / "gen" / "openhr.binpb")
BUF = REPO / "node_modules" / ".bin" / "buf"

ALL_CLUSTERS = ["identity", "profile", "matching", "messaging", "enrichment"]
INTERNAL_PATHS = [
    "/openhr.profile.v1.ProfileInternalService/BatchGetProfiles",
    "/openhr.enrichment.v1.EnrichmentInternalService/EmbedTexts",
    "/openhr.common.v1.UserDataService/DeleteUserData",
    "/grpc.health.v1.Health/Check",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
]
EMPTY_GRPC_WEB_FRAME = b"\x00\x00\x00\x00\x00"  # uncompressed, zero-length message

pytestmark = pytest.mark.timeout(120)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def descriptor() -> Path:
    if not DESCRIPTOR.exists():
        DESCRIPTOR.parent.mkdir(parents=True, exist_ok=True)
        tmp = DESCRIPTOR.with_name(f".{DESCRIPTOR.name}.{os.getpid()}")
        subprocess.run([str(BUF), "build", "-o", str(tmp)], cwd=REPO, check=True)
        os.replace(tmp, DESCRIPTOR)  # atomic: a concurrent run never reads half a file
    return DESCRIPTOR


@pytest.fixture(scope="module")
def dead_ports():
    """Ports bound but never listening: nothing else can take them, connects are refused."""
    socks = {}
    for name in ("profile", "enrichment"):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks[name] = s
    yield {name: s.getsockname()[1] for name, s in socks.items()}
    for s in socks.values():
        s.close()


def log_entry(edge: RunningEnvoy, request_id: str) -> dict:
    """The access-log line of `request_id` (Envoy flushes the log every 50 ms here)."""

    def entries() -> list[dict]:
        if not edge.access_log.exists():
            return []
        lines = [json.loads(line) for line in edge.access_log.read_text().splitlines()]
        return [entry for entry in lines if entry.get("request_id") == request_id]

    return wait_until(entries, message=f"no access log entry for {request_id}")[0]


@pytest.fixture(scope="module")
def edge(tmp_path_factory, descriptor, dead_ports):
    with running_envoy(
        dead_ports,
        tmp_path_factory.mktemp("envoy"),
        descriptor_path=str(descriptor),
        cors_allowed_origins=["http://localhost:5173", r"regex:^http://127\.0\.0\.1:[0-9]+$"],
        extra_args=["--file-flush-interval-msec", "50"],
    ) as edge:
        edge.wait_until(edge.live)
        yield edge


@pytest.fixture(scope="module")
def http(edge):
    with httpx.Client(base_url=edge.url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def channel(edge):
    with grpc.insecure_channel(f"127.0.0.1:{edge.port}") as ch:
        yield ch


def _grpc_web(http: httpx.Client, path: str, **headers) -> httpx.Response:
    return http.post(
        path,
        content=EMPTY_GRPC_WEB_FRAME,
        headers={
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
            **headers,
        },
    )


def _grpc_status(resp: httpx.Response) -> str | None:
    # Trailers-only answers carry grpc-status in the headers.
    return resp.headers.get("grpc-status")


# --------------------------------------------------------------------------- static checks


def _values(descriptor: Path, clusters: list[str]) -> dict:
    return {
        "listen_port": 18080,
        "admin_port": 19901,
        "descriptor_path": str(descriptor),
        "clusters": [{"name": n, "host": "127.0.0.1", "port": 50060 + i} for i, n in enumerate(clusters)],
        "rate_limit_token": "edge-token",
    }


def test_contracts_fit_envoy_transcoder(descriptor):
    """Envoy 1.40 only supports google.api.http response_body on google.api.HttpBody
    fields (envoyproxy/envoy#11136); any other use stops Envoy from starting."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor.read_bytes())
    messages = {f".{f.package}.{m.name}": m for f in fds.file for m in f.message_type}
    offending = []
    for f in fds.file:
        for service in f.service:
            for method in service.method:
                rule = method.options.Extensions[annotations_pb2.http]
                for r in [rule, *rule.additional_bindings]:
                    if not r.response_body:
                        continue
                    field = next(
                        (x for x in messages[method.output_type].field if x.name == r.response_body),
                        None,
                    )
                    if field is None or field.type_name != ".google.api.HttpBody":
                        offending.append(
                            f"{f.package}.{service.name}.{method.name} (response_body: {r.response_body!r})"
                        )
    assert not offending, (
        "response_body on non-HttpBody fields, unsupported by Envoy's "
        "grpc_json_transcoder:\n  " + "\n  ".join(offending)
    )


@pytest.mark.parametrize(
    "clusters",
    [["profile", "enrichment"], ALL_CLUSTERS],
    ids=["profile+enrichment", "all"],
)
def test_rendered_config_validates(tmp_path, descriptor, clusters):
    config = tmp_path / "envoy.yaml"
    config.write_text(render(**_values(descriptor, clusters)))
    assert_valid(config)


def test_only_present_clusters_are_referenced(descriptor):
    cfg = yaml.safe_load(render(**_values(descriptor, ["profile", "enrichment"])))
    res = cfg["static_resources"]
    # "unrouted": the endpoint-less target of the REST CORS anchor route.
    assert [c["name"] for c in res["clusters"]] == ["unrouted", "profile", "enrichment"]
    assert not res["clusters"][0]["load_assignment"]["endpoints"]
    hcm = res["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert [f["name"].rsplit(".", 1)[1] for f in hcm["http_filters"]] == [
        "cors",
        "grpc_web",
        "grpc_json_transcoder",
        "router",
    ]
    transcoder = hcm["http_filters"][2]["typed_config"]
    assert transcoder["services"] == [
        "openhr.profile.v1.ProfileService",
        "openhr.enrichment.v1.EnrichmentService",
        "openhr.enrichment.v1.SkillsService",
    ]
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    assert {r["route"]["cluster"] for r in routes if "route" in r} == {
        "profile",
        "enrichment",
        "unrouted",
    }
    anchor, not_found = routes[-2:]
    assert anchor["route"]["cluster"] == "unrouted"
    assert anchor["match"]["headers"][0]["invert_match"] is True  # never gRPC / grpc-web
    assert "direct_response" in not_found and not_found["match"] == {"prefix": "/"}
    assert [
        r["route"]["timeout"]
        for r in routes
        if r["match"].get("path") == "/openhr.enrichment.v1.EnrichmentService/WatchEnrichmentJob"
    ] == ["0s"]


def test_all_clusters_stream_routes_have_no_timeout(descriptor):
    cfg = yaml.safe_load(render(**_values(descriptor, ALL_CLUSTERS)))
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["stream_idle_timeout"] == "300s"
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    uploads = {r["match"]["path"]: r for r in routes if "request_body_buffer_limit" in r}
    # The upload route alone buffers a 5 MiB file as base64 JSON (the listener: 1 MiB).
    assert {path: r["request_body_buffer_limit"] for path, r in uploads.items()} == {
        "/openhr.enrichment.v1.EnrichmentService/CreateEnrichmentJob": 4 * (5 * 1024 * 1024 // 3 + 1) + 64 * 1024
    }
    streams = {
        r["match"]["path"]: r["route"]
        for r in routes
        if "path" in r["match"] and "route" in r and r["match"]["path"] not in uploads
    }
    assert set(streams) == {
        "/openhr.matching.v1.MatchingService/StreamMatchFeed",
        "/openhr.messaging.v1.MessagingService/StreamEvents",
        "/openhr.enrichment.v1.EnrichmentService/WatchEnrichmentJob",
        "/openhr.profile.v1.ProfileService/WatchMyProfile",
    }
    assert all(r["timeout"] == "0s" and "max_stream_duration" not in r for r in streams.values())
    unary = [
        r["route"] for r in routes if "prefix" in r["match"] and "route" in r and r["route"]["cluster"] != "unrouted"
    ]
    assert len(unary) == 7 and all(r["timeout"] == "15s" for r in unary)


def _edge_deadlines(config_text: str) -> tuple[str, str]:
    """(rate-limit call timeout, ext_proc message timeout) of a rendered config."""
    hcm = yaml.safe_load(config_text)["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    filters = {f["name"]: f["typed_config"] for f in hcm["typed_config"]["http_filters"]}
    ext_proc = filters["envoy.filters.http.ext_proc"]["extension_config"]["typed_config"]
    return filters["envoy.filters.http.ratelimit"]["timeout"], ext_proc["message_timeout"]


def test_edge_deadlines_are_settings(descriptor, tmp_path, monkeypatch):
    """Tight by default (every edge request waits for both), as the environment sets them
    otherwise (the test meshes: generous, so a starved CPU never turns into a failure)."""
    monkeypatch.setattr(stack, "DESCRIPTOR", descriptor)
    clusters = ["identity", "profile", "enrichment", "validation"]
    assert _edge_deadlines(render(**_values(descriptor, clusters))) == ("0.25s", "0.5s")
    default = StackConfig.from_env({"OPENHR_DATA_DIR": str(tmp_path / "default")})
    default.data_dir.mkdir()
    assert _edge_deadlines(default.envoy_config_path().read_text()) == ("0.25s", "0.5s")
    tuned = StackConfig.from_env(
        {
            "OPENHR_DATA_DIR": str(tmp_path),
            "OPENHR_EDGE_RATELIMIT_TIMEOUT": "3",
            "OPENHR_EDGE_VALIDATION_TIMEOUT": "7.5",
        }
    )
    assert _edge_deadlines(tuned.envoy_config_path().read_text()) == ("3.0s", "7.5s")


def test_unknown_cluster_is_refused(descriptor):
    with pytest.raises(ValueError, match="unknown cluster"):
        render(**_values(descriptor, ["profile", "billing"]))


# --------------------------------------------------------------------------- live edge


def test_admin_ready(edge):
    assert httpx.get(f"{edge.admin}/ready", timeout=5).text.strip() == "LIVE"


def test_rest_route_to_present_cluster_is_upstream_error(edge, http):
    resp = http.get(
        "/v1/skills:search",
        params={"query": "py"},
        headers={"x-request-id": "client-chosen-id"},
    )
    assert resp.status_code in (502, 503, 504), resp.text
    body = resp.json()
    assert body["code"] == 14 and body["details"] == []  # UNAVAILABLE, google.rpc.Status
    # Envoy mints the request id; a client-supplied one is dropped.
    request_id = resp.headers["x-request-id"]
    assert request_id != "client-chosen-id"
    entry = log_entry(edge, request_id)
    assert entry["upstream_cluster"] == "enrichment"
    assert entry["method"] == "GET" and entry["path"] == "/v1/skills:search?query=py"
    assert entry["grpc_path"] == "/openhr.enrichment.v1.SkillsService/SearchSkills"
    assert "authorization" not in json.dumps(entry).lower()


def test_rest_unknown_path_is_json_404(http):
    resp = http.get("/v1/nope")
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json()["code"] == 5


def test_rest_route_of_absent_cluster_is_404(edge, http):
    resp = http.get("/v1/matches")
    assert resp.status_code == 404 and resp.json()["code"] == 5
    # "unrouted" is the CORS anchor route's endpoint-less cluster (see the template).
    assert log_entry(edge, resp.headers["x-request-id"])["upstream_cluster"] in (
        None,
        "unrouted",
    )


def test_rest_unknown_query_parameter_is_400(http):
    resp = http.get("/v1/skills:search", params={"query": "py", "bogus": "1"})
    assert resp.status_code == 400 and resp.json()["code"] == 3


def test_rest_json_post_to_internal_grpc_path_is_404(http):
    resp = http.post("/openhr.profile.v1.ProfileInternalService/BatchGetProfiles", json={})
    assert resp.status_code == 404 and resp.json()["code"] == 5


@pytest.mark.parametrize("path", INTERNAL_PATHS)
def test_grpc_web_internal_never_reaches_a_cluster(edge, http, path):
    resp = _grpc_web(http, path)
    assert _grpc_status(resp) == "12", resp.headers  # UNIMPLEMENTED
    entry = log_entry(edge, resp.headers["x-request-id"])
    assert entry["upstream_cluster"] is None and entry["upstream_host"] is None


def test_grpc_web_public_reaches_its_cluster(edge, http):
    resp = _grpc_web(
        http,
        "/openhr.profile.v1.ProfileService/GetMyProfile",
        origin="http://localhost:5173",
    )
    assert _grpc_status(resp) == "14", resp.headers  # UNAVAILABLE: nothing listens
    assert resp.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "grpc-status" in resp.headers["access-control-expose-headers"]
    assert log_entry(edge, resp.headers["x-request-id"])["upstream_cluster"] == "profile"


def _raw_http1(edge, request: bytes) -> bytes:
    """Send bytes as-is (httpx would remove dot segments itself)."""
    with socket.create_connection(("127.0.0.1", edge.port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def test_path_normalisation_cannot_reach_internal(edge, http):
    # "/a/../b" is normalised before routing ...
    path = b"/openhr.profile.v1.ProfileService/../openhr.profile.v1.ProfileInternalService/BatchGetProfiles"
    head = _raw_http1(
        edge,
        b"POST " + path + b" HTTP/1.1\r\nhost: edge\r\n"
        b"content-type: application/grpc-web+proto\r\ncontent-length: 5\r\n"
        b"connection: close\r\n\r\n" + EMPTY_GRPC_WEB_FRAME,
    ).split(b"\r\n\r\n")[0]
    assert b"\r\ngrpc-status: 12\r\n" in head.lower(), head
    # ... and an escaped slash is rejected outright.
    escaped = _grpc_web(
        http,
        "/openhr.profile.v1.ProfileService%2F..%2Fopenhr.profile.v1.ProfileInternalService/BatchGetProfiles",
    )
    assert escaped.status_code == 400 or _grpc_status(escaped) == "13", escaped.headers


def test_cors_preflight(http):
    ok = http.options(
        "/v1/profiles/me",
        headers={
            "origin": "http://127.0.0.1:3000",
            "access-control-request-method": "GET",
            "access-control-request-headers": "authorization",
        },
    )
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "http://127.0.0.1:3000"
    assert "authorization" in ok.headers["access-control-allow-headers"]
    bad = http.options(
        "/v1/profiles/me",
        headers={
            "origin": "https://evil.example",
            "access-control-request-method": "GET",
        },
    )
    assert "access-control-allow-origin" not in bad.headers


def test_cors_headers_on_rest_responses(http):
    # The cors filter sees the REST path (before transcoding): both success and error
    # responses must carry the headers, or the browser hides them from the app.
    for resp in (
        http.get(
            "/v1/skills:search",
            params={"query": "py"},
            headers={"origin": "http://localhost:5173"},
        ),
        http.get("/v1/nope", headers={"origin": "http://localhost:5173"}),
    ):
        assert resp.headers.get("access-control-allow-origin") == "http://localhost:5173", resp
        assert "x-request-id" in resp.headers["access-control-expose-headers"]


@pytest.mark.parametrize("path", INTERNAL_PATHS)
def test_plain_grpc_internal_is_unimplemented(channel, path):
    call = channel.unary_unary(path)
    with pytest.raises(grpc.RpcError) as err:
        call(b"", timeout=5)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize(
    "path",
    [
        "/openhr.profile.v1.ProfileService/GetMyProfile",
        "/openhr.enrichment.v1.SkillsService/SearchSkills",
    ],
)
def test_plain_grpc_public_reaches_cluster(channel, path):
    call = channel.unary_unary(path)
    with pytest.raises(grpc.RpcError) as err:
        call(b"", timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_plain_grpc_stream_route(channel):
    call = channel.unary_stream("/openhr.enrichment.v1.EnrichmentService/WatchEnrichmentJob")
    with pytest.raises(grpc.RpcError) as err:
        list(call(b"", timeout=5))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_plain_grpc_absent_cluster_is_unimplemented(channel):
    call = channel.unary_stream("/openhr.messaging.v1.MessagingService/StreamEvents")
    with pytest.raises(grpc.RpcError) as err:
        list(call(b"", timeout=5))
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_unrouted_cluster_never_gets_a_request(edge, http, channel):
    """The REST CORS anchor's cluster has no endpoints: whatever this test sends, REST known and
    unknown (with an origin, and preflights), grpc-web and gRPC to internal paths, none of it
    is forwarded there (the counters of the whole module's requests stay 0 too)."""
    origin = {"origin": "http://localhost:5173"}
    http.get("/v1/skills:search", params={"query": "py"}, headers=origin)
    http.get("/v1/nope", headers=origin)
    http.options("/v1/nope", headers={**origin, "access-control-request-method": "GET"})
    http.post("/v1/profiles", json={"displayName": "Unrouted"}, headers=origin)
    for path in INTERNAL_PATHS:
        _grpc_web(http, path)
        with pytest.raises(grpc.RpcError):
            channel.unary_unary(path)(b"", timeout=5)
    stats = httpx.get(
        f"{edge.admin}/stats",
        # A request routed there finds no host: none_healthy, not rq_total, would count it.
        params={"filter": r"^cluster\.unrouted\.upstream_(rq_total|cx_total|cx_none_healthy)$"},
        timeout=5,
    ).text
    values = dict(line.split(": ") for line in stats.strip().splitlines())
    assert values == {
        "cluster.unrouted.upstream_rq_total": "0",
        "cluster.unrouted.upstream_cx_total": "0",
        "cluster.unrouted.upstream_cx_none_healthy": "0",
    }, stats
