"""Request ids through every hop, logs without PII, and Prometheus metrics per RPC."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx

from deploy.local.ephemeral import Mesh


def _log_lines(mesh: Mesh, service: str) -> list[dict]:
    lines = []
    for line in mesh.log(service).splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


async def _eventually_logged(mesh: Mesh, service: str, request_id: str) -> list[dict]:
    for _ in range(50):
        found = [line for line in _log_lines(mesh, service) if line.get("request_id") == request_id]
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"{service} never logged request {request_id}")


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
    profile_lines = await _eventually_logged(mesh, "profile", request_id)
    enrichment_lines = await _eventually_logged(mesh, "enrichment", request_id)
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
    await asyncio.sleep(0.5)
    for service in ("profile", "enrichment", "envoy"):
        text = mesh.log(service)
        assert marker not in text and email not in text, f"{service} logged personal data"


async def test_metrics_count_rpcs_by_method_and_code(mesh: Mesh, rest) -> None:
    headers = {"authorization": f"Bearer {mesh.token()}"}
    await rest.get("/v1/profiles/me", headers=headers)  # NOT_FOUND: no profile yet
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(f"http://127.0.0.1:{mesh.config.metrics_ports['profile']}/metrics")).text
    assert (
        'grpc_server_handled_total{grpc_code="NOT_FOUND",grpc_method="GetMyProfile",'
        'grpc_service="openhr.profile.v1.ProfileService",grpc_type="unary"}'
    ) in metrics
    assert 'grpc_server_handling_seconds_bucket{grpc_method="GetMyProfile"' in metrics
    assert 'openhr_dependency_up{dependency="postgres"} 1.0' in metrics
