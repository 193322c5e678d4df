"""Schemathesis against the live edge, from the generated OpenAPI document (gen/openapi.json):
cases generated for every public REST route, sent with a valid token of a real account that
has a profile and a skill. Checks: no 5xx, every response as the document declares it (status,
content type, schema, headers), and nothing stored by a refused request (tests/fuzz/hooks.py).
`DELETE /v1/me` runs last, on its own: it ends the token's account.

tests/fuzz/test_edge_fuzz.py runs a CI-sized sample inside `make test`; the full size (>= 10,000
cases) is `make fuzz`, i.e. `python -m tests.fuzz.edge_fuzz --examples 200` on a throwaway mesh."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx

from deploy.local.ephemeral import AUDIENCE, ISSUER, Mesh, start_mesh
from services.common.devkeys import mint_token
from services.common.settings import REPO_ROOT

DOCUMENT = REPO_ROOT / "gen" / "openapi.json"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "nothing_stored_when_refused",
)
# Run last, on its own: it ends the token's account.
LAST = "PrivacyService_DeleteMe"
PASSWORD = "violet-kettle-harbour"
PHASES = "coverage,fuzzing,stateful"


@dataclass(frozen=True)
class FuzzRun:
    returncode: int
    output: str
    # Requests sent, by operation ("POST /v1/profiles"), and by response status.
    requests: Counter[str]
    statuses: Counter[int]
    # "<check>: <operation>" of every check that failed.
    failures: list[str]

    @property
    def cases(self) -> int:
        return self.requests.total()


def fuzz_user(mesh: Mesh) -> tuple[str, str]:
    """(user id, a 2-hour access token) of a new account with a profile and a skill, so that
    routes about the caller's own data reach their services' rules, not only "not found"."""
    with httpx.Client(base_url=mesh.edge_url, timeout=30) as rest:
        email = f"fuzz-{uuid.uuid4().hex[:12]}@example.com"
        signed = rest.post("/v1/auth/signup", json={"email": email, "password": PASSWORD, "displayName": "Fuzz"})
        signed.raise_for_status()
        token = signed.json()["tokens"]["accessToken"]
        user_id = rest.get("/v1/me:export", headers={"authorization": f"Bearer {token}"}).json()["data"]["identity"][
            "account"
        ]["userId"]
        token = mint_token(user_id, issuer=ISSUER, audience=AUDIENCE, key_dir=mesh.key_dir, ttl_seconds=7200)
        headers = {"authorization": f"Bearer {token}"}
        profile = {"displayName": "Fuzz", "role": "ROLE_TECHNICAL_COFOUNDER", "timezone": "Europe/Berlin"}
        created = rest.post("/v1/profiles", json=profile, headers=headers)
        created.raise_for_status()
        profile_id = created.json()["profile"]["profileId"]
        rest.post(f"/v1/profiles/{profile_id}/skills", json={"name": "Python", "proficiency": 4}, headers=headers)
    return user_id, token


def run(
    mesh: Mesh, *, examples: int, report_dir: Path, phases: str = PHASES, seed: int | None = None
) -> FuzzRun:
    """Schemathesis over every operation but LAST: `examples` generated cases per operation in the
    fuzzing phase, plus the coverage phase's boundary cases and the stateful phase's chains (when
    in `phases`); then LAST, which ends the account (its repeats answer 401 "account deleted")."""
    user_id, token = fuzz_user(mesh)
    report_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks",
        "FUZZ_DATABASE_URL": mesh.config.database_url,
        "FUZZ_USER_ID": user_id,
        "PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / 'gen' / 'python'}",
    }
    common = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        str(DOCUMENT),
        "--url",
        mesh.edge_url,
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        ",".join(CHECKS),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--suppress-health-check",
        "all",
        "--generation-database",
        "none",
        "--continue-on-failure",
        "--output-truncate",
        "false",
        "--report",
        "ndjson",
        *(("--seed", str(seed)) if seed is not None else ()),
    ]
    rounds = [
        ("events.ndjson", ["--max-examples", str(examples), "--phases", phases, "--exclude-operation-id", LAST]),
        ("last.ndjson", ["--max-examples", "5", "--phases", "fuzzing", "--include-operation-id", LAST]),
    ]
    returncode, output = 0, ""
    requests: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    for report, arguments in rounds:
        # In the report directory: schemathesis keeps its crash cache (.schemathesis/) in the working directory.
        result = subprocess.run(
            [*common, "--report-ndjson-path", str(report_dir / report), *arguments],
            cwd=report_dir,
            env=env,
            capture_output=True,
            text=True,
        )
        returncode, output = returncode or result.returncode, output + result.stdout + result.stderr
        more_requests, more_statuses, more_failures = _read_events(report_dir / report)
        requests, statuses, failures = requests + more_requests, statuses + more_statuses, failures + more_failures
    return FuzzRun(returncode, output, requests, statuses, failures)


def _read_events(ndjson: Path) -> tuple[Counter[str], Counter[int], list[str]]:
    """What the run's event log (schemathesis's ndjson report) recorded of each scenario."""
    requests: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    failures = []
    for line in ndjson.read_text().splitlines():
        finished = json.loads(line).get("ScenarioFinished")
        if not finished:
            continue
        recorder = finished["recorder"]
        for interaction in recorder.get("interactions", {}).values():
            requests[recorder["label"]] += 1
            statuses[(interaction.get("response") or {}).get("status_code", 0)] += 1
        failures += [
            f"{check['name']}: {recorder['label']}"
            for checks in recorder.get("checks", {}).values()
            for check in checks
            if check["status"] == "failure"
        ]
    return requests, statuses, failures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--examples", type=int, default=200, help="generated cases per operation")
    parser.add_argument("--phases", default=PHASES)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--report-dir", type=Path, default=REPO_ROOT / ".data" / "fuzz")
    args = parser.parse_args(argv)
    mesh = start_mesh(REPO_ROOT / ".data" / f"fuzz-{os.getpid()}")
    try:
        result = run(mesh, examples=args.examples, report_dir=args.report_dir, phases=args.phases, seed=args.seed)
    finally:
        mesh.stop(remove_data=True)
    print(result.output)
    print(f"{result.cases} requests over {len(result.requests)} operations, by status: {dict(result.statuses)}")
    print(f"failed checks: {result.failures or 'none'}; schemathesis exit code {result.returncode}")
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
