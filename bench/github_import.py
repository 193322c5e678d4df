"""GitHub import wall time for a 20-repository account against the local GitHub stand-in
(tests/support/github_api.py, served by the OAuth stand-in on loopback), on a throwaway mesh.

Three cells, alternated round by round so machine noise hits each alike:
- cold: a job for a login never seen (no ETag cached): CreateEnrichmentJob -> the job's
  WatchEnrichmentJob stream says SUCCEEDED (queue, lease, GitHub reads, analysis, suggestions);
- warm: a re-import of the same login (every GitHub answer revalidated with If-None-Match -> 304);
- peer: the same GitHub reads done the plain way in this process, one GET after another with
  httpx and no analysis, no job, no database (what a naive importer costs in round trips alone).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Callable

import grpc
import httpx

from openhr.enrichment.v1 import enrichment_pb2
from tests.enrichment.jobs_client import finished, jobs_stub, start_github
from tests.support.github_api import sample_repos
from tests.support.oauth_provider import OAuthProvider
from tests.users import new_user

REPOSITORIES = 20


async def _peer(api: str, login: str) -> float:
    """Sequential plain reads of what the import reads (account, listing, per repository: languages,
    README, root listing and each manifest)."""
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=api, headers={"user-agent": "bench"}, timeout=10) as http:
        (await http.get(f"/users/{login}")).raise_for_status()
        repos = (await http.get(f"/users/{login}/repos", params={"per_page": 100})).json()
        for repo in repos:
            base = f"/repos/{login}/{repo['name']}"
            await http.get(f"{base}/languages")
            await http.get(f"{base}/readme")
            root = (await http.get(f"{base}/contents/")).json()
            for entry in root:
                if entry["name"] != "README.md":
                    await http.get(f"{base}/contents/{entry['name']}")
    return time.perf_counter() - started


async def _import(stub, user, login: str) -> float:
    started = time.perf_counter()
    job = await start_github(stub, user, login)
    done = await finished(stub, user, job.job_id)
    assert done.state == enrichment_pb2.JOB_STATE_SUCCEEDED, done.error_message
    return time.perf_counter() - started


async def _run(mesh, provider: OAuthProvider, rounds: int) -> dict:
    api = provider.github_api
    warm_login = f"bench-{uuid.uuid4().hex[:8]}"
    api.account(warm_login, sample_repos(REPOSITORIES))
    cells: dict[str, list[float]] = {"cold": [], "warm": [], "peer": []}
    async with grpc.aio.insecure_channel(mesh.target("enrichment")) as channel:
        stub = jobs_stub(channel)
        user = new_user(mesh, "bench")
        await _import(stub, user, warm_login)  # warm-up, and the ETags of the warm cell
        for _ in range(rounds):
            cold_login = f"bench-{uuid.uuid4().hex[:8]}"
            api.account(cold_login, sample_repos(REPOSITORIES))
            cells["cold"].append(await _import(stub, user, cold_login))
            before = api.not_modified
            cells["warm"].append(await _import(stub, user, warm_login))
            assert api.not_modified > before
            cells["peer"].append(await _peer(f"{provider.url}/github-api", cold_login))
    requests = api.requests_for(warm_login)
    return {
        "repositories": REPOSITORIES,
        "rounds": rounds,
        "median_s": {k: round(statistics.median(v), 3) for k, v in cells.items()},
        "max_s": {k: round(max(v), 3) for k, v in cells.items()},
        "requests_per_import": round(requests / (rounds + 1)),
    }


def run_github_import(log: Callable[[str], None], rounds: int = 7) -> dict:
    from deploy.local.ephemeral import start_mesh
    from services.common.settings import REPO_ROOT

    provider = OAuthProvider().start()
    mesh = start_mesh(REPO_ROOT / ".data" / f"bench-github-{uuid.uuid4().hex[:6]}", extra_env=provider.env())
    try:
        log(f"github import: {REPOSITORIES}-repository account, {rounds} rounds")
        return asyncio.run(_run(mesh, provider, rounds))
    finally:
        mesh.stop(remove_data=True)
        provider.stop()


def markdown(result: dict, machine_md: str) -> str:
    median, worst = result["median_s"], result["max_s"]
    return "\n".join(
        [
            "# GitHub import wall time",
            "",
            machine_md,
            "## Method",
            "",
            __doc__.strip().split("\n\n", 1)[1],
            "",
            f"{result['rounds']} rounds after one warm-up import; ~{result['requests_per_import']} GitHub requests "
            "per import. Figures: medians (max) in seconds.",
            "",
            "## Results",
            "",
            "| cell | median s | max s | vs peer |",
            "|---|---|---|---|",
            *(
                f"| {cell} | {median[cell]:.3f} | {worst[cell]:.3f} | {median[cell] / median['peer']:.2f}x |"
                for cell in ("cold", "warm", "peer")
            ),
            "",
        ]
    )
