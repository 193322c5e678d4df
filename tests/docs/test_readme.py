"""The README's walk-through runs as written: the shell blocks with curl in its "Using it"
sections (signing in, profiles and skills, matching, imports, generated texts, the clients, your
data) and the Python client's block run in order in one shell against the test mesh, each curl
failing the run on an HTTP error. Only what names `make run`'s machine changes: the edge's
address, the mail sink, the people's addresses (unique per run, so the walk can repeat in one
session) and the résumé file; GitHub is the stand-in (tests/support/github_api.py), which the
mesh's enrichment already calls, with an `octocat` account set up here.

Not run: "Sign-in with GitHub or Google" (its callback needs the code and state a browser brings
back from the provider's consent page: tests/identity drive that against the stand-in), the
grpcurl block (a Go binary, not installed here), and "Chat" (two interactive terminals; its
curl calls set up `make token` users for the repair CLI, whose OpenConversation
tests/messaging/test_chat.py covers)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

from deploy.local.ephemeral import Mesh
from services.common.settings import REPO_ROOT
from tests.enrichment.pdfs import resume_pdf
from tests.support.github_api import sample_repos
from tests.support.oauth_provider import OAuthProvider

README = REPO_ROOT / "README.md"
# In the README's order; each one's blocks depend on the ones before (Ada's token, her profile).
# "Your data" deletes Ada's account: it stays last.
SECTIONS = (
    "Signing in",
    "Profiles and skills",
    "Discovering, explaining, liking and matching",
    "Importing skills from GitHub or a résumé",
    "Generated texts: LLM or template",
    "gRPC, grpc-web and the Python client",
    "Your data",
)
PEOPLE = ("ada", "sam", "grace")
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.DOTALL | re.MULTILINE)
_CURL = re.compile(r"\bcurl\b")  # not grpcurl (a Go binary the README tells how to get)
# Every curl in the walk fails the script on an HTTP error, showing the body.
# (A curl in an `until` condition answers its own status, so a wait loop retries on an error.)
_PRELUDE = (
    "set -euo pipefail\n"
    'curl() { local status=0; command curl --fail-with-body --max-time 30 "$@" || status=$?; echo; return $status; }\n'
)


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n### {title}\n")
    end = min(i for i in (text.find("\n### ", start + 1), text.find("\n## ", start + 1)) if i != -1)
    return text[start:end]


def walk_blocks() -> list[tuple[str, str]]:
    """(language, code) of the blocks the walk runs, in order."""
    return [
        (language, code)
        for title in SECTIONS
        for language, code in _BLOCK.findall(section(title))
        if language == "python" or (language == "sh" and _CURL.search(code))
    ]


def walk_script(mesh: Mesh, emails: dict[str, str], resume: Path) -> str:
    """The blocks as one bash script for this mesh, `emails` standing in for name@example.com."""
    parts = [_PRELUDE]
    for language, code in walk_blocks():
        code = (
            code.replace("http://127.0.0.1:8080", mesh.edge_url)
            .replace("127.0.0.1:8080", mesh.edge_target)
            .replace(".data/mail/new", str(mesh.maildir / "new"))
            .replace("cv.pdf", str(resume))
        )
        for name, email in emails.items():
            code = code.replace(f"{name}@example.com", email)
        code = "\n".join(line for line in code.splitlines() if not line.startswith("make run"))
        if language == "python":
            code = f'TOKEN="$TOKEN" "{sys.executable}" - <<\'PYTHON\'\n{code}\nPYTHON'
        parts.append(code)
    return "\n".join(parts) + "\n"


def test_the_walk_has_every_documented_step() -> None:
    blocks = walk_blocks()
    assert [language for language, _ in blocks] == ["sh", "sh", "sh", "sh", "sh", "python", "sh"]
    steps = "\n".join(code for _, code in blocks)
    for route in ("auth/signup", "email:verify", "auth/refresh", "password:reset", "password:change", "auth/logout"):
        assert route in steps
    for route in ("/v1/profiles/$PID/skills", "skills:search", "me:export", "-X DELETE $EDGE/v1/me"):
        assert route in steps
    for route in ("pageToken=$NEXT", "$SAM/explanation", "$SAM:like", "$ADA:like", "mutual-matches", "$OTHER:pass"):
        assert route in steps
    for route in ("enrichment/jobs/$JOB_ID", "suggestions:accept", "suggestions:reject", "JOB_KIND_RESUME", "drafts"):
        assert route in steps
    # Nothing is left for the reader to fill in.
    assert "<" not in steps.replace("<(", "").replace("<<", "")


def test_the_walk_runs_as_written(mesh: Mesh, oauth_provider: OAuthProvider, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:10]
    emails = {name: f"{name}-{run}@example.com" for name in PEOPLE}
    resume = tmp_path / "cv.pdf"
    resume.write_bytes(resume_pdf())
    oauth_provider.github_api.account("octocat", sample_repos(8))
    env = {
        **os.environ,
        **mesh.config.service_env(),
        "PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / 'gen' / 'python'}",
    }
    result = subprocess.run(
        ["bash", "-c", walk_script(mesh, emails, resume)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    answers = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    # Sam's like made the match mutual, and Ada's mutual matches show Sam.
    assert {"mutual": False} in answers
    like = next(a for a in answers if a.get("mutual") is True)
    mutual = next(a for a in answers if a.get("matches") and "matchId" in a["matches"][0])
    assert [m["matchId"] for m in mutual["matches"]] == [like["match"]["matchId"]]
    # The GitHub import ran against the stand-in's octocat and its suggestions were reviewed.
    job = next(a["job"] for a in answers if a.get("job", {}).get("kind") == "JOB_KIND_GITHUB" and "github" in a["job"])
    assert job["state"] == "JOB_STATE_SUCCEEDED" and job["github"]["login"] == "octocat"
    assert any(a.get("job", {}).get("kind") == "JOB_KIND_APPLY" for a in answers)
    assert any(a.get("job", {}).get("kind") == "JOB_KIND_RESUME" for a in answers)
    # A first message to Sam was drafted (by the mesh's LLM stand-in, or the template).
    draft = next(a for a in answers if a.get("purpose") == "TEXT_PURPOSE_FIRST_MESSAGE")
    assert draft["text"] and draft["source"] in ("TEXT_SOURCE_LLM", "TEXT_SOURCE_TEMPLATE")
    # The verification link was the right one, the skill's category the contract's enum name,
    # and the export the account's own, in the proto3 JSON mapping.
    export = next(a for a in answers if "exportTime" in a)
    account = export["data"]["identity"]["account"]
    assert account["email"] == emails["ada"] and account["emailVerified"] is True
    skills = export["data"]["profile"]["profile"]["skills"]
    assert ("Kubernetes", "SKILL_CATEGORY_ENGINEERING") in [(s["name"], s["category"]) for s in skills]
    # The Python client printed Ada's name, through the edge with the same token.
    assert "\nAda " in result.stdout
    # The last step deleted the account: its address signs in no more.
    assert answers[-1] == {}
