"""The logs of a throwaway mesh (one file per process, deploy/local/ephemeral.py): JSON lines by
request id, proof that a service never saw a request, and a control request that shows the logs
have caught up before a test asserts that something is absent from them."""

from __future__ import annotations

import json
import uuid

import httpx

from deploy.local.ephemeral import Mesh
from tests.waiting import eventually


def json_lines(mesh: Mesh, process: str) -> list[dict]:
    """The JSON lines of a process's log (services' structlog lines, Envoy's access log)."""
    lines = []
    for line in mesh.log(process).splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:  # a line being written right now
                continue
    return lines


def logged_request_ids(mesh: Mesh, process: str) -> set[str]:
    return {line.get("request_id") for line in json_lines(mesh, process)}


async def logged(mesh: Mesh, process: str, request_id: str) -> list[dict]:
    """The lines `process` logged for `request_id` (waits until there is one)."""

    def lines() -> list[dict]:
        return [line for line in json_lines(mesh, process) if line.get("request_id") == request_id]

    return await eventually(lines, message=f"{process} never logged request {request_id}")


async def assert_never_reached(mesh: Mesh, service: str, request_ids: list[str], control_id: str) -> None:
    """`service` logged none of `request_ids`. `control_id` is a request sent AFTER them that
    did reach it: once its line is in the log, any of theirs would be there too."""
    assert all(request_ids), request_ids
    await logged(mesh, service, control_id)
    seen = logged_request_ids(mesh, service)
    assert not seen & set(request_ids), f"{service} saw {seen & set(request_ids)}"


async def caught_up(mesh: Mesh, rest: httpx.AsyncClient) -> None:
    """Sends one marked request to each of identity, profile, enrichment and the body validator
    through the edge, and waits until each process and Envoy's access log show theirs. Logs are
    written in order, so whatever the requests before these logged is then on disk: a test may
    assert that something is absent. (The SMTP sink and Redis log nothing per request: a mail
    waited for in the Maildir has been handled.)"""
    headers = {"authorization": f"Bearer {mesh.token()}"}
    marker = f"control_{uuid.uuid4().hex}"
    identity = await rest.get("/.well-known/jwks.json")
    profile = await rest.get("/v1/profiles/me", headers=headers)  # 404: no profile, logged all the same
    enrichment = await rest.get("/v1/skills:search", params={"query": "py"}, headers=headers)
    # The validator logs no request id, only the fields it refused: the marker is one.
    validation = await rest.post("/v1/profiles", json={"displayName": "Control", marker: 1}, headers=headers)
    answers = (identity, profile, enrichment, validation)
    assert [a.status_code for a in answers] == [200, 404, 200, 400], [a.text for a in answers]
    for process, answer in (("identity", identity), ("profile", profile), ("enrichment", enrichment)):
        await logged(mesh, process, answer.headers["x-request-id"])
    await eventually(
        lambda: f"profile.{marker}" in mesh.log("validation"), message="the validator never logged the control body"
    )
    for answer in answers:
        await logged(mesh, "envoy", answer.headers["x-request-id"])
