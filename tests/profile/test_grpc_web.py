"""Browsers: grpc-web (binary framing) through Envoy, unary and server streaming."""

from __future__ import annotations

import asyncio

from deploy.local.ephemeral import Mesh
from openhr.profile.v1 import profile_pb2
from tests.grpcweb import DATA, TRAILERS, call_headers, frame, frames

SERVICE = "/openhr.profile.v1.ProfileService"


async def _create(rest, token: str, name: str) -> dict:
    response = await rest.post("/v1/profiles", json={"displayName": name}, headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()["profile"]


async def test_unary_call_over_grpc_web(mesh: Mesh, rest) -> None:
    token = mesh.token()
    created = await _create(rest, token, "Grace")
    request = profile_pb2.GetProfileRequest(profile_id=created["profileId"])
    response = await rest.post(
        f"{SERVICE}/GetProfile", content=frame(request.SerializeToString()), headers=call_headers(token)
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/grpc-web")
    received = [f async for f in frames(response)]
    assert [f.flag for f in received] == [DATA, TRAILERS]
    assert profile_pb2.GetProfileResponse.FromString(received[0].payload).profile.display_name == "Grace"
    assert received[1].trailers["grpc-status"] == "0"


async def test_grpc_web_error_carries_status(mesh: Mesh, rest) -> None:
    request = profile_pb2.GetProfileRequest(profile_id="not-a-uuid")
    response = await rest.post(
        f"{SERVICE}/GetProfile", content=frame(request.SerializeToString()), headers=call_headers(mesh.token())
    )
    # Trailers-only: the status travels in the headers.
    assert response.headers["grpc-status"] == "3"
    assert "profile_id" in response.headers["grpc-message"]


async def test_server_stream_over_grpc_web_delivers_changes(mesh: Mesh, rest) -> None:
    token = mesh.token()
    created = await _create(rest, token, "Ada")
    body = frame(profile_pb2.WatchMyProfileRequest().SerializeToString())
    async with rest.stream("POST", f"{SERVICE}/WatchMyProfile", content=body, headers=call_headers(token)) as stream:
        assert stream.status_code == 200
        incoming = frames(stream)
        first = profile_pb2.WatchMyProfileResponse.FromString((await anext(incoming)).payload)
        assert (first.profile.display_name, first.profile.version) == ("Ada", 1)

        patch = await rest.patch(
            f"/v1/profiles/{created['profileId']}",
            params={"updateMask": "headline"},
            json={"headline": "Live over grpc-web"},
            headers={"authorization": f"Bearer {token}"},
        )
        assert patch.status_code == 200
        pushed = profile_pb2.WatchMyProfileResponse.FromString(
            (await asyncio.wait_for(anext(incoming), timeout=10)).payload
        )
        assert (pushed.profile.headline, pushed.profile.version) == ("Live over grpc-web", 2)
