"""Résumé parsing: a real PDF becomes sections, skills, years of experience and links; a bad
file is refused with its reason and nothing is stored; a 4.9 MiB upload works through the
edge over REST and grpc-web, and a larger one gets a clear 4xx."""

from __future__ import annotations

import base64

import grpc
import httpx
import pytest

from deploy.local.ephemeral import Mesh
from openhr.enrichment.v1 import enrichment_pb2 as S
from tests.enrichment.jobs_client import finished, jobs_stub, start
from tests.enrichment.pdfs import MIB, corrupt_pdf, encrypted_pdf, image_only_pdf, resume_pdf
from tests.grpcweb import TRAILERS, call_headers, frame, frames
from tests.users import new_user

UPLOAD_PATH = "/openhr.enrichment.v1.EnrichmentService/CreateEnrichmentJob"


@pytest.fixture(scope="module")
async def stub(mesh: Mesh):
    async with grpc.aio.insecure_channel(mesh.target("enrichment")) as channel:
        yield jobs_stub(channel)


@pytest.fixture(scope="module")
def big_pdf() -> bytes:
    pdf = resume_pdf(size=int(4.9 * MIB))
    assert 4.8 * MIB < len(pdf) < 5 * MIB
    return pdf


async def _jobs(stub, user) -> list:
    return list((await stub.ListEnrichmentJobs(S.ListEnrichmentJobsRequest(), metadata=user.metadata)).jobs)


async def test_a_resume_becomes_sections_skills_years_and_links(mesh: Mesh, stub) -> None:
    user = new_user(mesh)
    job = await start(stub, user, kind=S.JOB_KIND_RESUME, resume_pdf=resume_pdf())
    done = await finished(stub, user, job.job_id)
    assert done.state == S.JOB_STATE_SUCCEEDED, done.error_message
    assert list(done.resume.sections) == ["Summary", "Experience", "Education", "Skills"]
    assert done.resume.years_of_experience >= 12.5  # 2014-03 to 2018-12 and 2019-01 to now
    links = {link.kind: link.url for link in done.resume.links}
    assert links == {
        "github": "https://github.com/jane-example",
        "linkedin": "https://www.linkedin.com/in/jane-example",
        "website": "https://janedoe.dev",
    }
    skills = {s.name: s for s in done.skills}
    for name in ("Python", "Go", "Kubernetes", "PostgreSQL", "React", "Product Management", "B2B Sales"):
        assert name in skills, (name, sorted(skills))
    assert "listed under Skills" in skills["Python"].evidence
    assert skills["Python"].proficiency >= skills["React"].proficiency
    assert "jane@example.com" not in str(done)  # an address is not a link, and not kept


@pytest.mark.parametrize(
    ("document", "reason", "words"),
    [
        (b"Jane Example, engineer", "not_a_pdf", "not a PDF"),
        (encrypted_pdf(), "encrypted_pdf", "password"),
        (corrupt_pdf(), "corrupt_pdf", "damaged"),
        (b"%PDF-1.7\n" + bytes(5 * MIB), "too_large", "larger than 5 MiB"),
    ],
)
async def test_a_bad_file_is_refused_with_its_reason_and_nothing_is_stored(
    mesh: Mesh, stub, document: bytes, reason: str, words: str
) -> None:
    user = new_user(mesh)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await start(stub, user, kind=S.JOB_KIND_RESUME, resume_pdf=document)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "resume_pdf" in refused.value.details() and words in refused.value.details()
    assert await _jobs(stub, user) == []


async def test_a_pdf_without_text_fails_the_job_and_keeps_nothing(mesh: Mesh, stub) -> None:
    user = new_user(mesh)
    job = await start(stub, user, kind=S.JOB_KIND_RESUME, resume_pdf=image_only_pdf())
    done = await finished(stub, user, job.job_id)
    assert done.state == S.JOB_STATE_FAILED
    assert done.failure_reason == "no_text"
    assert "no text" in done.error_message
    assert list(done.skills) == []
    suggestions = await stub.ListEnrichmentSuggestions(S.ListEnrichmentSuggestionsRequest(), metadata=user.metadata)
    assert list(suggestions.suggestions) == []


async def test_a_49_mib_resume_uploads_through_the_edge_over_rest(mesh: Mesh, stub, big_pdf: bytes) -> None:
    user = new_user(mesh)
    body = {"kind": "JOB_KIND_RESUME", "resumePdf": base64.b64encode(big_pdf).decode(), "requestId": "cv-1"}
    async with httpx.AsyncClient(base_url=mesh.edge_url, timeout=60) as rest:
        response = await rest.post("/v1/enrichment/jobs", json=body, headers=user.headers)
    assert response.status_code == 200, response.text[:500]
    job = response.json()["job"]
    done = await finished(stub, user, job["jobId"])
    assert done.state == S.JOB_STATE_SUCCEEDED, done.error_message
    assert done.resume.pages == 2 and "Python" in {s.name for s in done.skills}


async def test_a_49_mib_resume_uploads_through_the_edge_over_grpc_web(mesh: Mesh, stub, big_pdf: bytes) -> None:
    user = new_user(mesh)
    request = S.CreateEnrichmentJobRequest(kind=S.JOB_KIND_RESUME, resume_pdf=big_pdf)
    async with httpx.AsyncClient(base_url=mesh.edge_url, timeout=60) as client:
        async with client.stream(
            "POST", UPLOAD_PATH, content=frame(request.SerializeToString()), headers=call_headers(user.token)
        ) as response:
            received = [f async for f in frames(response)]
    assert response.status_code == 200
    trailers = next(f for f in received if f.flag == TRAILERS).trailers
    assert trailers["grpc-status"] == "0", trailers
    job = S.CreateEnrichmentJobResponse.FromString(received[0].payload).job
    assert (await finished(stub, user, job.job_id)).state == S.JOB_STATE_SUCCEEDED


async def test_an_upload_over_5_mib_gets_a_clear_4xx_at_the_edge(mesh: Mesh, stub) -> None:
    user = new_user(mesh)
    oversized = resume_pdf(size=5 * MIB + 32 * 1024)  # its JSON still fits the edge's buffer
    assert len(oversized) > 5 * MIB
    body = {"kind": "JOB_KIND_RESUME", "resumePdf": base64.b64encode(oversized).decode()}
    async with httpx.AsyncClient(base_url=mesh.edge_url, timeout=60) as rest:
        response = await rest.post("/v1/enrichment/jobs", json=body, headers=user.headers)
        huge = await rest.post(
            "/v1/enrichment/jobs",
            json={"kind": "JOB_KIND_RESUME", "resumePdf": base64.b64encode(bytes(8 * MIB)).decode()},
            headers=user.headers,
        )
    assert response.status_code == 400, response.text[:300]
    assert "larger than 5 MiB" in response.json()["message"]
    assert huge.status_code == 413, huge.text[:300]  # Envoy refuses it before any service
    assert huge.json()["message"] == "Payload Too Large"
    assert await _jobs(stub, user) == []
