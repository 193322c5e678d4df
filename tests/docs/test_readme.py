"""The README's walk-through runs as written: the shell blocks with curl in its "Using it"
sections on signing in, profiles, the clients and your data, and the Python client's block, run
in order in one shell against the test mesh, each curl failing the run on an HTTP error.
Only what names `make run`'s machine changes: the edge's address, the mail sink and Ada's
address (unique per run, so the walk can repeat in one session)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid

from deploy.local.ephemeral import Mesh
from services.common.settings import REPO_ROOT

README = REPO_ROOT / "README.md"
# In the README's order; each one's blocks depend on the ones before (Ada's token, her profile).
SECTIONS = ("Signing in", "Profiles and skills", "gRPC, grpc-web and the Python client", "Your data")
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.DOTALL | re.MULTILINE)
_CURL = re.compile(r"\bcurl\b")  # not grpcurl (a Go binary the README tells how to get)
# Every curl in the walk fails the script on an HTTP error, showing the body.
_PRELUDE = 'set -euo pipefail\ncurl() { command curl --fail-with-body --max-time 30 "$@"; echo; }\n'


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


def walk_script(mesh: Mesh, email: str) -> str:
    """The blocks as one bash script for this mesh."""
    parts = [_PRELUDE]
    for language, code in walk_blocks():
        code = (
            code.replace("http://127.0.0.1:8080", mesh.edge_url)
            .replace("127.0.0.1:8080", mesh.edge_target)
            .replace(".data/mail/new", str(mesh.maildir / "new"))
            .replace("ada@example.com", email)
        )
        code = "\n".join(line for line in code.splitlines() if not line.startswith("make run"))
        if language == "python":
            code = f'TOKEN="$TOKEN" "{sys.executable}" - <<\'PYTHON\'\n{code}\nPYTHON'
        parts.append(code)
    return "\n".join(parts) + "\n"


def test_the_walk_has_every_documented_step() -> None:
    blocks = walk_blocks()
    assert [language for language, _ in blocks] == ["sh", "sh", "python", "sh"]
    steps = "\n".join(code for _, code in blocks)
    for route in ("auth/signup", "email:verify", "auth/refresh", "password:reset", "password:change", "auth/logout"):
        assert route in steps
    for route in ("/v1/profiles/$PID/skills", "skills:search", "me:export", "-X DELETE $EDGE/v1/me"):
        assert route in steps


def test_the_walk_runs_as_written(mesh: Mesh) -> None:
    email = f"ada-{uuid.uuid4().hex[:10]}@example.com"
    env = {
        **os.environ,
        **mesh.config.service_env(),
        "PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / 'gen' / 'python'}",
    }
    result = subprocess.run(
        ["bash", "-c", walk_script(mesh, email)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    answers = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    # The verification link was the right one, the skill's category the contract's enum name,
    # and the export the account's own, in the proto3 JSON mapping.
    export = next(a for a in answers if "exportTime" in a)
    account = export["data"]["identity"]["account"]
    assert account["email"] == email and account["emailVerified"] is True
    skills = export["data"]["profile"]["profile"]["skills"]
    assert [(s["name"], s["category"]) for s in skills] == [("Kubernetes", "SKILL_CATEGORY_ENGINEERING")]
    # The Python client printed Ada's name, through the edge with the same token.
    assert "\nAda " in result.stdout
    # The last step deleted the account: its address signs in no more.
    assert answers[-1] == {}
