"""Calls through the edge over REST, gRPC and grpc-web that report what came back and the
request id Envoy gave them, and the edge Envoy's counters."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from urllib.parse import unquote

import grpc
import httpx
from google.protobuf import json_format
from google.rpc import status_pb2

from deploy.local.ephemeral import Mesh
from tests.grpcweb import HEADERS as GRPC_WEB_HEADERS
from tests.grpcweb import frame

# google.rpc.Code of an HTTP status Envoy answers with (and grpc-web / gRPC codes by name).
UNAUTHENTICATED, RESOURCE_EXHAUSTED, UNIMPLEMENTED = 16, 8, 12


@dataclass
class Answer:
    """The outcome of one call: HTTP status (REST, grpc-web), gRPC status code, message,
    headers (or gRPC metadata) and Envoy's request id."""

    status: int
    grpc_status: int | None
    message: str
    headers: dict[str, str]
    request_id: str
    body: dict | None = None


def bearer(token: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"} if token is not None else {}


async def rest_call(client: httpx.AsyncClient, method: str, path: str, *, token: str | None = None, **kwargs) -> Answer:
    headers = {**bearer(token), **kwargs.pop("headers", {})}
    response = await client.request(method, path, headers=headers, **kwargs)
    try:
        body = response.json()
    except ValueError:
        body = None
    message = body.get("message", "") if isinstance(body, dict) else ""
    code = body.get("code") if isinstance(body, dict) else None
    return Answer(response.status_code, code, message, dict(response.headers), response.headers["x-request-id"], body)


async def grpc_call(
    channel: grpc.aio.Channel, path: str, request: bytes = b"", *, token: str | None = None, metadata=()
) -> Answer:
    call = channel.unary_unary(path)(request, metadata=(*bearer(token).items(), *metadata), timeout=10)
    try:
        await call
    except grpc.aio.AioRpcError as error:
        found = {k: v for k, v in (*(error.initial_metadata() or ()), *(error.trailing_metadata() or ()))}
        return Answer(200, error.code().value[0], error.details() or "", found, found.get("x-request-id", ""))
    found = {k: v for k, v in (*(await call.initial_metadata() or ()), *(await call.trailing_metadata() or ()))}
    return Answer(200, 0, "", found, found.get("x-request-id", ""))


async def grpc_web_call(
    client: httpx.AsyncClient, path: str, request: bytes = b"", *, token: str | None = None
) -> Answer:
    response = await client.post(path, content=frame(request), headers={**GRPC_WEB_HEADERS, **bearer(token)})
    status = response.headers.get("grpc-status")
    if status is None:  # not trailers-only: the status is in the trailers frame at the end
        raw = response.content
        marker = raw.rfind(b"grpc-status:")
        status = raw[marker:].split(b"\r\n", 1)[0].split(b":", 1)[1].strip().decode() if marker >= 0 else None
    return Answer(
        response.status_code,
        int(status) if status is not None else None,
        unquote(response.headers.get("grpc-message", "")),
        dict(response.headers),
        response.headers["x-request-id"],
    )


async def envoy_stats(admin: str, pattern: str) -> dict[str, int]:
    """The counters of an Envoy's admin /stats (at `admin`, http://host:port) matching `pattern`."""
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{admin}/stats", params={"filter": pattern})
    lines = (line.split(": ", 1) for line in response.text.strip().splitlines() if ": " in line)
    return {name: int(value) for name, value in lines}


async def envoy_stat(mesh: Mesh, name: str) -> int:
    """One counter of the edge Envoy's admin /stats (e.g. http.edge.ext_proc.streams_started)."""
    stats = await envoy_stats(f"http://127.0.0.1:{mesh.config.admin_port}", f"^{re.escape(name)}$")
    return stats.get(name, 0)


def error_details(answer: Answer) -> list[dict]:
    """google.rpc.Status.details of an error answer in the proto3 JSON mapping, whatever the
    transport: a REST body's `details`, else the status in grpc-status-details-bin (gRPC
    trailers, grpc-web headers of a trailers-only answer) - checked to agree with grpc-status and
    grpc-message, as gRPC clients that read the details require."""
    if answer.body is not None:
        return answer.body["details"]
    raw = answer.headers["grpc-status-details-bin"]
    if isinstance(raw, str):
        raw = base64.b64decode(raw + "=" * (-len(raw) % 4))
    status = status_pb2.Status.FromString(raw)
    assert (status.code, status.message) == (answer.grpc_status, answer.message), (status, answer)
    return json_format.MessageToDict(status, always_print_fields_with_no_presence=True)["details"]


def error_info(reason: str) -> dict:
    """google.rpc.ErrorInfo as the services (and the edge) put it in an error's details."""
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "openhr.dev",
        "metadata": {},
    }
