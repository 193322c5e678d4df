"""Request ids through every hop, logs without PII, and Prometheus metrics per RPC."""

from __future__ import annotations

import uuid

from deploy.local.ephemeral import Mesh
from tests.logs import caught_up, logged
from tests.metrics import sample


async def test_envoy_request_id_reaches_every_hop(mesh: Mesh, rest) -> None:
    headers = {"authorization": f"Bearer {mesh.token()}"}
    profile = (await rest.post("/v1/profiles", json={"displayName": "Trace"}, headers=headers)).json()["profile"]
    response = await rest.post(
        f"/v1/profiles/{profile['profileId']}/skills",
        json={"name": "golang", "proficiency": 3},
        headers={**headers, "x-request-id": "client-chosen-id"},
    )
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    assert request_id != "client-chosen-id", "the edge must not trust a client's request id"
    uuid.UUID(request_id)
    profile_lines = await logged(mesh, "profile", request_id)
    enrichment_lines = await logged(mesh, "enrichment", request_id)
    assert any(line["rpc"].endswith("/AddSkill") for line in profile_lines)
    assert any(line["rpc"].endswith("/NormalizeSkill") for line in enrichment_lines)


async def test_logs_carry_no_personal_data(mesh: Mesh, rest) -> None:
    marker = f"Zelda{uuid.uuid4().hex[:8]}"
    email = f"{marker.lower()}@example.com"
    headers = {"authorization": f"Bearer {mesh.token(email)}"}
    created = await rest.post(
        "/v1/profiles", json={"displayName": marker, "summary": f"write to {email}"}, headers=headers
    )
    assert created.status_code == 200
    bad = await rest.post("/v1/profiles", json={"displayName": marker, "timezone": email}, headers=headers)
    assert bad.status_code in (400, 409)
    await caught_up(mesh, rest)
    for service in ("profile", "enrichment", "envoy"):
        text = mesh.log(service)
        assert marker not in text and email not in text, f"{service} logged personal data"


async def test_metrics_count_rpcs_by_method_and_code(mesh: Mesh, rest) -> None:
    headers = {"authorization": f"Bearer {mesh.token()}"}
    rpc = {"grpc_service": "openhr.profile.v1.ProfileService", "grpc_method": "GetMyProfile", "grpc_type": "unary"}
    series = {
        "not_found": ("grpc_server_handled_total", {**rpc, "grpc_code": "NOT_FOUND"}),
        "ok": ("grpc_server_handled_total", {**rpc, "grpc_code": "OK"}),
        "started": ("grpc_server_started_total", rpc),
        "timed": ("grpc_server_handling_seconds_count", rpc),
    }

    async def counts() -> dict[str, float]:
        return {key: await sample(mesh, "profile", name, **labels) for key, (name, labels) in series.items()}

    before = await counts()
    assert (await rest.get("/v1/profiles/me", headers=headers)).status_code == 404  # no profile yet
    after = await counts()
    assert {key: after[key] - before[key] for key in series} == {"not_found": 1, "ok": 0, "started": 1, "timed": 1}
    assert await sample(mesh, "profile", "openhr_dependency_up", dependency="postgres") == 1.0
